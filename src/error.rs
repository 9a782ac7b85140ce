//! The crate's one error type.

use std::fmt;
use std::io;

use crate::Fd;

/// What can go wrong in a selector or event-loop call.
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
    /// The event loop has no source for this [`Token`](crate::Token): it was
    /// unregistered (or never belonged to this loop).
    InvalidToken,
    /// The source's callback is running right now, so its object cannot be
    /// taken or borrowed (it is borrowed by that callback).
    InUse,
    /// The source's object is not of the type asked for.
    TypeMismatch {
        /// The type asked for.
        expected: &'static str,
    },
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
            Error::TypeMismatch { expected } => write!(f, "the source's object is not a {expected}"),
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
            Error::InvalidEvents { .. } | Error::FdTooLarge { .. } | Error::TypeMismatch { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::Closed => io::ErrorKind::NotConnected,
            Error::InUse | Error::AlreadyRunning => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// `Result<T, selectloop::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
