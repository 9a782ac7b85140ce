//! Lending a registered source's object together with the loop, for the
//! transports in `crate::transport`: their handles act on the loop and on
//! the object at once, outside the object's own callback.

use std::panic::{self, AssertUnwindSafe};

use super::{EventLoop, Token};
use crate::{Backend, Error, Result, Source};

impl<B: Backend> EventLoop<B> {
    /// Runs `f` with the loop and a source's object, the object taken out of
    /// its slot meanwhile exactly as while its callback runs (so a nested
    /// `take`/`with_source`/`with_source_and_loop` for it answers
    /// [`Error::InUse`]). The object goes back afterwards, even if `f`
    /// panics, unless `f` unregistered the source: then it is dropped.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::InUse`] if its callback (or another lender) has it.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn with_source_and_loop<T: Source + 'static, R>(
        &mut self,
        token: Token<T>,
        f: impl FnOnce(&mut EventLoop<B>, &mut T) -> R,
    ) -> Result<R> {
        let mut handler = match self.sel.key_mut(token.slot) {
            Some(key) if key.data.gen == token.gen => {
                key.data.handler.take().ok_or(Error::InUse)?
            }
            _ => return Err(Error::InvalidToken),
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let obj = handler
                .obj_mut()
                .downcast_mut::<T>()
                .expect("a Token<T> names a source whose object is a T");
            f(self, obj)
        }));
        match self.sel.key_mut(token.slot) {
            Some(key) if key.data.gen == token.gen => key.data.handler = Some(handler),
            // Unregistered meanwhile: the selector no longer watches it.
            _ => drop(handler),
        }
        Ok(result.unwrap_or_else(|panic| panic::resume_unwind(panic)))
    }
}
