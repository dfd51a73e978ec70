//! Uploaded KYC files (SEP-12 `POST /customer/files` and binary fields).

use super::{Store, StoreResult, on_pool, on_read_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: String,
    pub account: String,
    pub memo: String,
    pub customer_id: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
}

const FILE_COLUMNS: &str = "id, account, memo, customer_id, content_type, size, created_at";

impl Store {
    /// `data` is `None` when the bytes are kept in a folder instead.
    pub async fn insert_file(&self, file: &FileRow, data: Option<&[u8]>) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("INSERT INTO customer_files (id, account, memo, customer_id, content_type, size, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&file.id)
            .bind(&file.account)
            .bind(&file.memo)
            .bind(&file.customer_id)
            .bind(&file.content_type)
            .bind(file.size)
            .bind(data)
            .bind(file.created_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn file(&self, id: &str) -> StoreResult<Option<FileRow>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM customer_files WHERE id = $1");
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?,
        )
    }

    /// The bytes kept in the database; `None` when the file is unknown or kept on disk.
    pub async fn file_data(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let data: Option<Option<Vec<u8>>> = on_read_pool!(self, pool => sqlx::query_scalar("SELECT data FROM customer_files WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(data.flatten())
    }

    pub async fn files_of_customer(&self, customer_id: &str) -> StoreResult<Vec<FileRow>> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM customer_files WHERE customer_id = $1 ORDER BY created_at, id"
        );
        Ok(
            on_read_pool!(self, pool => sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(customer_id)
                .fetch_all(pool)
                .await)?,
        )
    }

    /// Deletes the uploads that no customer holds and that were made before `before`;
    /// their ids.
    pub async fn delete_unattached_files(&self, before: i64) -> StoreResult<Vec<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "DELETE FROM customer_files WHERE customer_id IS NULL AND created_at < $1 RETURNING id")
            .bind(before)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn delete_file(&self, id: &str) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM customer_files WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
