use super::sqlite_direct::{self, Finish};
use super::{Store, StoreResult, on_pool};

impl Store {
    /// Marks a SEP-10 challenge as used. Returns false when it already was: the caller must
    /// then refuse to issue a second token for it.
    pub async fn consume_challenge(&self, hash_hex: &str, expires_at: i64) -> StoreResult<bool> {
        const SQL: &str = "INSERT INTO used_challenges (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING";
        if let Some(direct) = self.direct() {
            let hash_hex = hash_hex.to_owned();
            let inserted = direct
                .write(move |tx| {
                    sqlite_direct::execute(tx, SQL, &[&hash_hex, &expires_at]).map(Finish::Commit)
                })
                .await?;
            return Ok(inserted == 1);
        }
        let result = on_pool!(self, pool => sqlx::query(SQL)
            .bind(hash_hex)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(result == 1)
    }

    /// Forgets challenges past their expiry: they can no longer verify anyway.
    pub async fn purge_used_challenges(&self, now: i64) -> StoreResult<u64> {
        let removed = on_pool!(self, pool => sqlx::query("DELETE FROM used_challenges WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(removed)
    }
}
