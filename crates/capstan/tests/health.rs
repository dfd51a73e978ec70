//! `GET /health`: liveness and database readiness.

mod common;

use common::{TestApp, json_of};

#[tokio::test]
async fn health_reports_database_readiness() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.get("/health").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["status"].as_str(), body["database"].as_str()),
        (Some("ok"), Some("ok"))
    );

    // The database goes away: not ready, with an error body, and the process still answers.
    app.running.anchor.store.close().await;
    let (status, body) = json_of(app.get("/health").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "unavailable");
    assert!(body["error"].is_string());
    assert!(
        app.get("/health")
            .await
            .headers()
            .contains_key("x-request-id")
    );
}
