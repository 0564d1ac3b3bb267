//! Test isolation on shared services: a throwaway PostgreSQL database per test, and a Redis key
//! prefix per test. Tests read the servers from `SLUICE_TEST_POSTGRES_URL` and
//! `SLUICE_TEST_REDIS_URL` and skip (with a printed reason) when they are unset.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "SLUICE_TEST_POSTGRES_URL";
/// The Redis server tests may use.
pub const REDIS_ENV: &str = "SLUICE_TEST_REDIS_URL";
/// Set to `postgres` to run the gateway's test suite on PostgreSQL stores.
pub const STORE_ENV: &str = "SLUICE_TEST_STORE";

/// `SLUICE_TEST_POSTGRES_URL`, or `None` after printing why the test skips.
pub fn postgres_url(test: &str) -> Option<String> {
    env_or_skip(POSTGRES_ENV, test)
}

/// `SLUICE_TEST_REDIS_URL`, or `None` after printing why the test skips.
pub fn redis_url(test: &str) -> Option<String> {
    env_or_skip(REDIS_ENV, test)
}

fn env_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set");
            None
        }
    }
}

/// Whether the suite runs on PostgreSQL stores (`SLUICE_TEST_STORE=postgres` and a server URL).
pub fn suite_on_postgres() -> Option<String> {
    match std::env::var(STORE_ENV).as_deref() {
        Ok("postgres") => std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()),
        _ => None,
    }
}

/// A unique, hash-tag-free name part: `<pid>_<random>`.
pub fn unique_suffix() -> String {
    format!("{}_{:08x}", std::process::id(), rand::random::<u32>())
}

/// A PostgreSQL database created for one test and dropped when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates `sluice_test_<pid>_<random>` on the server of `server_url`.
    pub async fn create(server_url: &str) -> Result<TestDatabase, sqlx::Error> {
        let admin: PgConnectOptions = server_url.parse()?;
        let name = format!("sluice_test_{}", unique_suffix());
        let mut conn = PgConnection::connect_with(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = server_url.split('?').next().unwrap_or(server_url);
        let url = match base.rfind('/') {
            Some(i) if i > base.find("://").map_or(0, |s| s + 2) => {
                format!("{}/{name}", &base[..i])
            }
            _ => format!("{base}/{name}"),
        };
        Ok(TestDatabase { admin, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that is shutting down: drop the database from a thread
        // with its own small runtime, and wait for it.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}
