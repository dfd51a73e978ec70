//! Where uploaded KYC files live: in the database by default, or in `kyc.files_dir`.
//! Either way the database row is the record of the file, and its owner.

use std::path::{Path, PathBuf};

use crate::store::{FileRow, Store, unix_now};

use super::{Caller, KycError, KycResult};

#[derive(Debug, Clone)]
pub struct FileStore {
    store: Store,
    dir: Option<PathBuf>,
}

impl FileStore {
    pub fn new(store: Store, dir: Option<PathBuf>) -> FileStore {
        FileStore { store, dir }
    }

    /// Keeps an upload of `caller` (under `memo`, the identity it was sent for).
    pub async fn save(
        &self,
        caller: &Caller,
        memo: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> KycResult<FileRow> {
        let row = FileRow {
            id: uuid::Uuid::new_v4().to_string(),
            account: caller.account.to_string(),
            memo: memo.to_owned(),
            customer_id: None,
            content_type: content_type.to_owned(),
            size: bytes.len() as i64,
            created_at: unix_now(),
        };
        match &self.dir {
            Some(dir) => {
                // Written under a temporary name and renamed, so a crash leaves no half file
                // under a real id.
                let tmp = dir.join(format!(".{}.part", row.id));
                let write = async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&tmp, bytes).await?;
                    tokio::fs::rename(&tmp, self.path(&row.id)).await
                };
                write.await.map_err(|e| {
                    tracing::error!(error = %e, "cannot write an uploaded file to kyc.files_dir");
                    KycError::Unavailable(
                        "cannot store the file right now; try again shortly".into(),
                    )
                })?;
                if let Err(e) = self.store.insert_file(&row, None).await {
                    // Without its record, nothing would ever erase these bytes.
                    self.remove(std::slice::from_ref(&row.id)).await;
                    return Err(e.into());
                }
            }
            None => self.store.insert_file(&row, Some(bytes)).await?,
        }
        Ok(row)
    }

    /// The file `id`, if `caller` owns it (uploaded it, or owns the customer it belongs to).
    pub async fn owned(&self, caller: &Caller, id: &str) -> KycResult<Option<FileRow>> {
        let Some(file) = self.store.file(id).await? else {
            return Ok(None);
        };
        Ok(caller.owns(&file.account, &file.memo).then_some(file))
    }

    pub async fn bytes(&self, id: &str) -> KycResult<Option<Vec<u8>>> {
        match &self.dir {
            Some(_) => match tokio::fs::read(self.path(id)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Written before the folder was configured.
                    Ok(self.store.file_data(id).await?)
                }
                Err(e) => {
                    tracing::error!(file_id = %id, error = %e, "cannot read a file from kyc.files_dir");
                    Err(KycError::Unavailable(
                        "cannot read the file right now; try again shortly".into(),
                    ))
                }
            },
            None => Ok(self.store.file_data(id).await?),
        }
    }

    /// Removes the bytes of erased files from the folder (their rows are already gone).
    pub async fn remove(&self, ids: &[String]) {
        if self.dir.is_none() {
            return;
        }
        for id in ids {
            match tokio::fs::remove_file(self.path(id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file_id = %id, error = %e, "cannot remove an erased customer's file")
                }
            }
        }
    }

    /// Forgets one file (an upload whose request failed).
    pub async fn discard(&self, id: &str) {
        if let Err(e) = self.store.delete_file(id).await {
            tracing::warn!(file_id = %id, error = %e, "cannot discard an upload");
        }
        self.remove(&[id.to_owned()]).await;
    }

    fn path(&self, id: &str) -> PathBuf {
        // Ids are UUIDs capstan made, never client text, so they are safe file names.
        self.dir.as_deref().unwrap_or(Path::new(".")).join(id)
    }
}
