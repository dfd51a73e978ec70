use super::{Store, StoreResult, on_pool, unix_now};

impl Store {
    /// The secret stored under `name`, created by `generate` on first use. Concurrent first
    /// starts (replicas) agree: the first insert wins and everyone reads it back.
    pub async fn generated_secret(
        &self,
        name: &str,
        generate: impl FnOnce() -> String,
    ) -> StoreResult<String> {
        let candidate = generate();
        let now = unix_now();
        on_pool!(self, pool => sqlx::query("INSERT INTO generated_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(&candidate)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        let value: String = on_pool!(self, pool => sqlx::query_scalar("SELECT value FROM generated_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await)?;
        Ok(value)
    }
}
