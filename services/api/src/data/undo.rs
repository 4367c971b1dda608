//! Undoing a half-done change to an image when a request fails or is cancelled.

use std::future::Future;

/// Runs `undo` unless disarmed: awaited on error paths with [`Undo::run`], and spawned
/// from `Drop` when the request is cancelled (a client that vanishes mid-stream).
pub(crate) struct Undo<F: Future<Output = ()> + 'static> {
    undo: Option<F>,
}

impl<F: Future<Output = ()> + 'static> Undo<F> {
    /// `undo` does nothing until it is run or the guard is dropped armed.
    pub(crate) fn new(undo: F) -> Self {
        Self { undo: Some(undo) }
    }

    pub(crate) fn disarm(mut self) {
        self.undo = None;
    }

    pub(crate) async fn run(mut self) {
        if let Some(undo) = self.undo.take() {
            undo.await;
        }
    }
}

impl<F: Future<Output = ()> + 'static> Drop for Undo<F> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            actix_web::rt::spawn(undo);
        }
    }
}
