//! Reading an answer of the anchor's business server, which both forwarders (KYC and
//! SEP-31) do the same way: whole, but never more than [`MAX_ANSWER_BYTES`].

/// The longest answer read. The business server's answers are small JSON documents; a
/// longer one is a fault, and reading it whole would let it fill the anchor's memory.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub enum AnswerError {
    /// The connection failed or timed out before the answer ended.
    Cut(reqwest::Error),
    /// The answer is longer than [`MAX_ANSWER_BYTES`]; what was read is dropped.
    TooLong,
}

/// The body of `response`, read to its end.
pub async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, AnswerError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(AnswerError::TooLong);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(AnswerError::Cut)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(AnswerError::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
