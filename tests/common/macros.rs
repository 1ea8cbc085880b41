//! The test declarations that run a body on each engine and each platform.

/// Declares each `async fn name(app: TestApp) { .. }` as two tests, `name::sqlite` and
/// `name::postgres` (the latter skipped outside CI when PostgreSQL is not configured).
#[macro_export]
macro_rules! on_both_engines {
    ($($(#[doc = $doc:literal])* async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::start(Engine::Sqlite).await.expect("sqlite")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::start(Engine::Postgres).await {
                    run(app).await
                }
            }
        }
    )*};
}

/// Declares each `async fn name(app: TestApp)` as four tests: `name::sqlite` and
/// `name::postgres` against the Geosite simulator, `name::ozmap_sqlite` and
/// `name::ozmap_postgres` against the OZmap one: the end-to-end suites run on both platforms.
#[macro_export]
macro_rules! on_every_platform {
    ($($(#[doc = $doc:literal])* async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use mapping_gateway::simulator::SimPlatform;

            async fn run($app: TestApp) $body

            async fn on(engine: Engine, platform: SimPlatform) {
                if let Some(app) = TestApp::start(engine).await {
                    run(app.on(platform)).await
                } else {
                    assert_eq!(engine, Engine::Postgres, "SQLite always starts");
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                on(Engine::Sqlite, SimPlatform::Geosite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                on(Engine::Postgres, SimPlatform::Geosite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ozmap_sqlite() {
                on(Engine::Sqlite, SimPlatform::Ozmap).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ozmap_postgres() {
                on(Engine::Postgres, SimPlatform::Ozmap).await
            }
        }
    )*};
}

/// Declares each `async fn name(platform: SimPlatform)` already written as two tests,
/// `name::geosite` and `name::ozmap`.
#[macro_export]
macro_rules! each_platform {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn geosite() {
                super::$name(mapping_gateway::simulator::SimPlatform::Geosite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ozmap() {
                super::$name(mapping_gateway::simulator::SimPlatform::Ozmap).await
            }
        }
    )*};
}

/// Declares each `async fn name(engine: Engine, platform: SimPlatform)` already written as
/// four tests: `name::sqlite`, `name::postgres`, `name::ozmap_sqlite`, `name::ozmap_postgres`.
#[macro_export]
macro_rules! each_engine_and_platform {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::common::Engine;
            use mapping_gateway::simulator::SimPlatform;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Engine::Sqlite, SimPlatform::Geosite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Engine::Postgres, SimPlatform::Geosite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ozmap_sqlite() {
                super::$name(Engine::Sqlite, SimPlatform::Ozmap).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ozmap_postgres() {
                super::$name(Engine::Postgres, SimPlatform::Ozmap).await
            }
        }
    )*};
}

/// Declares each `async fn name(engine: Engine)` already written as two tests, `name::sqlite`
/// and `name::postgres` (the function decides what a missing PostgreSQL means).
#[macro_export]
macro_rules! each_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Engine::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Engine::Postgres).await
            }
        }
    )*};
}
