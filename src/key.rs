//! [`SelectorKey`]: what a selector keeps for each registered file object.

use crate::{Fd, Interest};

/// A registration: Python's `SelectorKey(fileobj, fd, events, data)`.
///
/// The selector owns the key and therefore the file object, so the
/// descriptor cannot be closed while it is registered;
/// [`Selector::unregister`](crate::Selector::unregister) hands the key, and
/// with it the file object, back.
///
/// ```
/// use std::net::TcpListener;
/// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
///
/// let mut sel: DefaultSelector<TcpListener, &str> = DefaultSelector::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let fd = listener.fileno();
/// let key = sel.register(listener, EVENT_READ, "accept")?;
/// assert_eq!((key.fd, key.events, key.data), (fd, EVENT_READ, "accept"));
/// let key = sel.unregister(fd)?;
/// let listener: TcpListener = key.fileobj; // ours again
/// # drop(listener);
/// # Ok::<(), selectloop::Error>(())
/// ```
///
/// A registered object that the selector only borrows must outlive the
/// selector, so it cannot be closed while registered either. This does not
/// compile (and is why CPython's `test_unregister_after_fd_close` has no
/// port in `tests/selectors.rs`):
///
/// ```compile_fail,E0505
/// use std::net::TcpListener;
/// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let fd = listener.fileno();
/// let mut sel: DefaultSelector<&TcpListener> = DefaultSelector::new()?;
/// sel.register(&listener, EVENT_READ, ())?;
/// drop(listener); // error[E0505]: cannot move out of `listener` because it is borrowed
/// sel.unregister(fd)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorKey<F, D> {
    /// The registered object.
    pub fileobj: F,
    /// Its descriptor, read once at registration.
    pub fd: Fd,
    /// The events it is watched for.
    pub events: Interest,
    /// The user's data attached to it (in the seeds, the callback to run).
    pub data: D,
}
