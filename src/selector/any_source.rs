//! [`AnySource`]: a boxed registrable object, the file-object type selectors
//! default to.

use std::fmt;

use crate::Source;

/// Any registrable object, boxed: the file-object type selectors default to,
/// for registering listeners, streams and pipes side by side.
///
/// It is `Send + Sync` (every std socket is), so a
/// [`RegisterError<AnySource>`](crate::RegisterError) converts into
/// `anyhow::Error` with `?`.
///
/// ```
/// use std::net::{TcpListener, UdpSocket};
/// use selectloop::{AnySource, DefaultSelector, Selector, EVENT_READ};
///
/// let mut sel: DefaultSelector = DefaultSelector::new()?;
/// sel.register(AnySource::new(TcpListener::bind("127.0.0.1:0")?), EVENT_READ, ())?;
/// sel.register(AnySource::new(UdpSocket::bind("127.0.0.1:0")?), EVENT_READ, ())?;
/// assert_eq!(sel.get_map()?.len(), 2);
/// # Ok::<(), selectloop::Error>(())
/// ```
///
/// A failed registration is then just another error, for `anyhow` as for
/// any `Box<dyn Error + Send + Sync>`:
///
/// ```
/// use std::error::Error;
/// use std::net::TcpListener;
/// use selectloop::{AnySource, DefaultSelector, Selector, EVENT_READ};
///
/// fn watch(sel: &mut DefaultSelector, listener: TcpListener) -> Result<(), Box<dyn Error + Send + Sync>> {
///     sel.register(AnySource::new(listener), EVENT_READ, ())?;
///     Ok(())
/// }
///
/// let mut sel: DefaultSelector = DefaultSelector::new()?;
/// watch(&mut sel, TcpListener::bind("127.0.0.1:0")?)?;
/// sel.close()?;
/// assert!(watch(&mut sel, TcpListener::bind("127.0.0.1:0")?).is_err());
/// # Ok::<(), Box<dyn Error + Send + Sync>>(())
/// ```
pub struct AnySource(Box<dyn Source + Send + Sync>);

impl AnySource {
    /// Boxes `source`.
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use selectloop::{AnySource, Source};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let fd = listener.fileno();
    /// assert_eq!(AnySource::new(listener).fileno(), fd);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new<S: Source + Send + Sync + 'static>(source: S) -> AnySource {
        AnySource(Box::new(source))
    }

    /// The boxed object.
    pub fn into_inner(self) -> Box<dyn Source + Send + Sync> {
        self.0
    }

    pub(crate) fn inner(&self) -> &(dyn Source + Send + Sync) {
        &*self.0
    }
}

impl fmt::Debug for AnySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnySource").field(&self.0.fileno()).finish()
    }
}
