//! Where uploaded KYC files live: in the database by default, or in `kyc.files_dir`.
//! Either way the database row is the record of the file, and its owner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{FileRow, Store, StoreResult, unix_now};

use super::{Caller, KycError, KycResult};

/// How much longer than its lifetime an unattached upload is kept before it is deleted: a
/// `PUT` that found it still alive has that long to attach it (more than any request may
/// take, `server.request_timeout_secs` being at most 600).
const DELETE_GRACE_SECS: i64 = 3600;

#[derive(Debug, Clone)]
pub struct FileStore {
    store: Store,
    dir: Option<PathBuf>,
    /// How long an upload waits for a `PUT` to attach it (`kyc.unattached_file_lifetime_secs`).
    unattached_lifetime: Option<Duration>,
}

impl FileStore {
    pub fn new(
        store: Store,
        dir: Option<PathBuf>,
        unattached_lifetime: Option<Duration>,
    ) -> FileStore {
        FileStore {
            store,
            dir,
            unattached_lifetime,
        }
    }

    /// An upload no customer holds, older than its lifetime: it can no longer be named in a
    /// `PUT` or listed, and it will be deleted.
    fn expired(&self, file: &FileRow, now: i64) -> bool {
        file.customer_id.is_none()
            && self
                .unattached_lifetime
                .is_some_and(|lifetime| file.created_at.saturating_add(secs(lifetime)) <= now)
    }

    /// Deletes the uploads that expired unattached, as of `now`, and the bytes of those kept
    /// in `kyc.files_dir`; how many.
    pub async fn delete_expired(&self, now: i64) -> StoreResult<usize> {
        let Some(lifetime) = self.unattached_lifetime else {
            return Ok(0);
        };
        let before = now
            .saturating_sub(secs(lifetime))
            .saturating_sub(DELETE_GRACE_SECS);
        let deleted = self.store.delete_unattached_files(before).await?;
        self.remove(&deleted).await;
        Ok(deleted.len())
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
        if self.expired(&file, unix_now()) {
            return Ok(None);
        }
        Ok(caller.owns(&file.account, &file.memo).then_some(file))
    }

    /// The upload a `PUT` names as `<name>_file_id` for `customer` (`None`: one it is about
    /// to create): an upload of the caller's, not expired, that no other customer holds.
    pub async fn attachable(
        &self,
        caller: &Caller,
        name: &str,
        file_id: &str,
        customer: Option<&str>,
    ) -> KycResult<FileRow> {
        let Some(file) = self.owned(caller, file_id).await? else {
            return Err(KycError::BadRequest(format!(
                "{name}_file_id: no file {file_id} was uploaded by this account, or it expired before a PUT named it"
            )));
        };
        if file
            .customer_id
            .as_deref()
            .is_some_and(|owner| Some(owner) != customer)
        {
            return Err(KycError::BadRequest(format!(
                "{name}_file_id: file {file_id} already belongs to another customer"
            )));
        }
        Ok(file)
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

    /// Removes the bytes of erased or expired files from the folder (their rows are already
    /// gone).
    pub async fn remove(&self, ids: &[String]) {
        if self.dir.is_none() {
            return;
        }
        for id in ids {
            match tokio::fs::remove_file(self.path(id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file_id = %id, error = %e, "cannot remove an erased file from kyc.files_dir")
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

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
