//! The crate's one error type.

use std::fmt;
use std::io;

use crate::Fd;

/// What can go wrong in a selector or event-loop call.
///
/// Selector calls produce `AlreadyRegistered`, `NotRegistered`,
/// `InvalidEvents`, `Closed`, `FdTooLarge` and `Io`; the event loop adds
/// `InvalidToken`, `InUse` and `AlreadyRunning` (and passes the selector's
/// on). One enum for both layers, so that `?` carries a selector error out of
/// a loop call unchanged and a `match` needs no nesting. Every variant is
/// produced directly: a `FdTooLarge` is never wrapped inside `Io`.
///
/// It converts into [`io::Error`] with a fitting [`io::ErrorKind`] (the
/// original error stays reachable through [`io::Error::get_ref`]), so `?`
/// works in functions returning `io::Result` as well as `anyhow::Result`.
///
/// ```
/// use std::io;
/// use selectloop::Error;
///
/// let e: io::Error = Error::NotRegistered { fd: 7 }.into();
/// assert_eq!(e.kind(), io::ErrorKind::NotFound);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file descriptor (socket) is already registered with this selector
    /// (Python raises `KeyError`).
    AlreadyRegistered {
        /// The descriptor passed in.
        fd: Fd,
    },
    /// The file descriptor (socket) is not registered with this selector
    /// (Python raises `KeyError`).
    NotRegistered {
        /// The descriptor passed in.
        fd: Fd,
    },
    /// An event mask that is empty or has bits other than
    /// [`EVENT_READ`](crate::EVENT_READ) and [`EVENT_WRITE`](crate::EVENT_WRITE)
    /// (Python raises `ValueError`).
    InvalidEvents {
        /// The offending bits.
        bits: u8,
    },
    /// The selector (or loop) was closed; nothing can be done with it any more.
    Closed,
    /// The descriptor cannot be watched by this backend because its number is
    /// too large (`select(2)` handles only descriptors below `FD_SETSIZE`).
    FdTooLarge {
        /// The descriptor passed in.
        fd: Fd,
        /// The backend's limit: descriptors must be below it.
        limit: Fd,
    },
    /// The event loop has no source for this `Token`: it was
    /// unregistered (or never belonged to this loop).
    InvalidToken,
    /// The source's callback is running right now, so its object cannot be
    /// taken or borrowed (it is borrowed by that callback).
    InUse,
    /// `run` or `run_once` was called from inside one of the loop's own callbacks.
    AlreadyRunning,
    /// The operating system refused the operation.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyRegistered { fd } => write!(f, "descriptor {fd} is already registered"),
            Error::NotRegistered { fd } => write!(f, "descriptor {fd} is not registered"),
            Error::InvalidEvents { bits } => write!(
                f,
                "invalid event mask {bits:#x}: expected EVENT_READ (1), EVENT_WRITE (2) or both"
            ),
            Error::Closed => f.write_str("the selector is closed"),
            Error::FdTooLarge { fd, limit } => write!(
                f,
                "descriptor {fd} is too large for this selector (limit {limit}); use PollSelector or DefaultSelector"
            ),
            Error::InvalidToken => f.write_str("no source is registered for this token"),
            Error::InUse => f.write_str("the source's callback is running; its object is borrowed"),
            Error::AlreadyRunning => f.write_str("the event loop is already running"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::Io(inner) => return inner,
            Error::AlreadyRegistered { .. } => io::ErrorKind::AlreadyExists,
            Error::NotRegistered { .. } | Error::InvalidToken => io::ErrorKind::NotFound,
            Error::InvalidEvents { .. } | Error::FdTooLarge { .. } => io::ErrorKind::InvalidInput,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::InUse | Error::AlreadyRunning => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// `Result<T, selectloop::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed registration: the [`Error`], and the object that was to be
/// registered, handed back unharmed (calloop's `InsertError`).
///
/// Nothing the caller passes to a `register` is closed behind its back: on
/// every failure (`AlreadyRegistered`, `FdTooLarge`, `Closed`, the kernel's
/// refusal) the object comes back through [`into_inner`](RegisterError::into_inner).
/// `?` turns it into an [`Error`], an [`io::Error`] or an `anyhow::Error`,
/// dropping the object. (`anyhow::Error` and `Box<dyn Error>` hold only
/// `'static` errors: for a borrowed object, a `&TcpStream` say, convert with
/// [`into_error`](RegisterError::into_error) first.)
///
/// ```
/// # #[cfg(unix)] {
/// use std::net::TcpListener;
/// use selectloop::{DefaultSelector, Error, Selector, EVENT_READ};
///
/// let mut sel: DefaultSelector<TcpListener> = DefaultSelector::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let again = listener.try_clone()?; // the same socket, another descriptor
/// sel.register(listener, EVENT_READ, ())?;
/// sel.close()?;
/// let err = sel.register(again, EVENT_READ, ()).unwrap_err();
/// assert!(matches!(err.error(), Error::Closed));
/// let again: TcpListener = err.into_inner(); // still open, still ours
/// assert!(again.local_addr().is_ok());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RegisterError<F> {
    error: Error,
    fileobj: F,
}

impl<F> RegisterError<F> {
    pub(crate) fn new(error: Error, fileobj: F) -> RegisterError<F> {
        RegisterError { error, fileobj }
    }

    /// Why the registration failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The object that was to be registered.
    pub fn into_inner(self) -> F {
        self.fileobj
    }

    /// The error, dropping (closing) the object.
    pub fn into_error(self) -> Error {
        self.error
    }

    /// The error and the object.
    pub fn into_parts(self) -> (Error, F) {
        (self.error, self.fileobj)
    }

    /// Applies `f` to the object handed back (the event loop unboxes it).
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> RegisterError<G> {
        RegisterError {
            error: self.error,
            fileobj: f(self.fileobj),
        }
    }
}

impl<F> fmt::Debug for RegisterError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterError")
            .field("error", &self.error)
            .field("fileobj", &std::any::type_name::<F>())
            .finish()
    }
}

impl<F> fmt::Display for RegisterError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<F> std::error::Error for RegisterError<F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<F> From<RegisterError<F>> for Error {
    fn from(e: RegisterError<F>) -> Error {
        e.error
    }
}

impl<F> From<RegisterError<F>> for io::Error {
    fn from(e: RegisterError<F>) -> io::Error {
        e.error.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_io_error_with_fitting_kind_and_keeps_the_original() {
        let cases = [
            (
                Error::AlreadyRegistered { fd: 3 },
                io::ErrorKind::AlreadyExists,
            ),
            (Error::NotRegistered { fd: 3 }, io::ErrorKind::NotFound),
            (
                Error::InvalidEvents { bits: 0 },
                io::ErrorKind::InvalidInput,
            ),
            (
                Error::FdTooLarge {
                    fd: 5000,
                    limit: 1024,
                },
                io::ErrorKind::InvalidInput,
            ),
            (Error::Closed, io::ErrorKind::NotConnected),
        ];
        for (e, kind) in cases {
            let text = e.to_string();
            let io: io::Error = e.into();
            assert_eq!(io.kind(), kind);
            assert_eq!(io.get_ref().unwrap().to_string(), text);
            assert!(io.get_ref().unwrap().downcast_ref::<Error>().is_some());
        }
        let io: io::Error = Error::Io(io::Error::from_raw_os_error(1)).into();
        assert_eq!(io.raw_os_error(), Some(1));
    }
}
