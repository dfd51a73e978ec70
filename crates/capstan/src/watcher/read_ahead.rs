//! Reading a stream ahead of the database. A task reads and decodes the source's records
//! into a bounded queue while the watcher writes the previous batch, and follows the
//! source from page to page: Horizon closes a stream after each page of records, and the
//! next page is opened from the last record read, not from the stored cursor, so opening it
//! overlaps the write too.
//!
//! Reading ahead never moves the stored cursor: that is written only with the batch it
//! covers. When the watcher stops or fails, whatever was read ahead is dropped, and the next
//! connection resumes from the stored cursor, so nothing is skipped.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::source::{ItemStream, PaymentSource, SourceError, SourceItem};

/// Records read ahead at most: the memory a fast source can make the watcher hold.
const QUEUE: usize = 1000;

pub struct ReadAhead {
    items: mpsc::Receiver<Result<SourceItem, SourceError>>,
    task: JoinHandle<()>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReadAhead {
    /// Reads `first` (opened at `from`), then the next pages while each page brought
    /// something. It ends after an error (passed on as the last item), or when a page
    /// ends without a record.
    pub fn start(
        source: Arc<dyn PaymentSource>,
        account: String,
        from: String,
        first: ItemStream,
    ) -> ReadAhead {
        let (sender, items) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            let mut cursor = from;
            let mut stream = first;
            loop {
                let mut advanced = false;
                while let Some(item) = futures_util::StreamExt::next(&mut stream).await {
                    let failed = item.is_err();
                    if let Ok(item) = &item {
                        item.cursor().clone_into(&mut cursor);
                        advanced = true;
                    }
                    if sender.send(item).await.is_err() || failed {
                        return;
                    }
                }
                if !advanced {
                    return;
                }
                tracing::debug!(account = %account, cursor = %cursor, "payment stream: page read; opening the next one");
                match source.open(&account, &cursor).await {
                    Ok(next) => stream = next,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        ReadAhead { items, task }
    }

    /// The next record, or None when the source has no more for now.
    pub async fn next(&mut self) -> Option<Result<SourceItem, SourceError>> {
        self.items.recv().await
    }

    /// The next record if one is read already.
    pub fn ready(&mut self) -> Option<Option<Result<SourceItem, SourceError>>> {
        match self.items.try_recv() {
            Ok(item) => Some(Some(item)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
        }
    }
}
