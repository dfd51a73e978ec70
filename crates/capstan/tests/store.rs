//! The store API, run on SQLite always and on PostgreSQL when CAPSTAN_TEST_POSTGRES_URL is
//! set: the same assertions on both backends.

mod common;

use capstan::store::Store;

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        4,
    )
    .await
    .unwrap();
    (store, dir)
}

async fn postgres(test: &str) -> Option<Store> {
    let url = common::postgres_url(test).await?;
    Some(
        Store::connect(&url, 4)
            .await
            .expect("connect to PostgreSQL"),
    )
}

async fn migrations_apply_and_are_idempotent(store: &Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn generated_secrets_are_kept(store: &Store) {
    store.migrate().await.unwrap();
    let first = store.generated_secret("k", || "one".into()).await.unwrap();
    let second = store.generated_secret("k", || "two".into()).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
    // Concurrent first uses agree on one value.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .generated_secret("race", move || format!("v{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    values.dedup();
    assert_eq!(values.len(), 1, "{values:?}");
}

async fn challenges_are_consumed_once(store: &Store) {
    store.migrate().await.unwrap();
    assert!(store.consume_challenge("aa", 100).await.unwrap());
    assert!(!store.consume_challenge("aa", 100).await.unwrap());
    assert!(store.consume_challenge("bb", 300).await.unwrap());
    // Concurrent consumers: exactly one wins.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_challenge("cc", 500).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
    // Purge removes only the expired ones.
    assert_eq!(store.purge_used_challenges(200).await.unwrap(), 1);
    assert!(
        store.consume_challenge("aa", 100).await.unwrap(),
        "expired marker was purged"
    );
    assert!(
        !store.consume_challenge("bb", 300).await.unwrap(),
        "live marker was kept"
    );
}

/// A PUT's write for a customer that a DELETE erased meanwhile writes nothing and says so
/// (the request answers 404, not a foreign-key 500).
async fn fields_of_an_erased_customer_are_not_written(store: &Store) {
    store.migrate().await.unwrap();
    let account = stellar::Keypair::random().public_key().to_string();
    let customer = store
        .find_or_create_customer("c-erased", &account, "", "")
        .await
        .unwrap();
    let write = capstan::store::FieldWrite {
        name: "first_name".into(),
        value: Some("Ana".into()),
        file_id: None,
        status: "ACCEPTED".into(),
        error: None,
        verification_code: None,
    };
    assert!(
        store
            .save_customer_fields(
                &customer.id,
                Some("sep31-sender"),
                std::slice::from_ref(&write),
                &[]
            )
            .await
            .unwrap()
    );
    store.erase_customer(&account, "").await.unwrap();
    assert!(
        !store
            .save_customer_fields(&customer.id, Some("sep31-sender"), &[write], &[])
            .await
            .unwrap()
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::sqlite().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = super::postgres(stringify!($name)).await else { return };
                    assert_eq!(store.backend(), "postgres");
                    super::$name(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_apply_and_are_idempotent,
    generated_secrets_are_kept,
    challenges_are_consumed_once,
    fields_of_an_erased_customer_are_not_written
);

#[tokio::test]
async fn unreachable_database_is_a_clear_error() {
    let error = Store::connect("postgres://nobody@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot open database"),
        "{error}"
    );
}
