//! The shared transport over real HTTP (wiremock): how a call renews its platform session.

use std::sync::Arc;

use async_trait::async_trait;
use mapping_gateway::transport::{Auth, ClientOptions, Session, Transport};
use mapping_gateway::{Error, Result};
use reqwest::Method;

/// A session that renews by script: each renewal gives the next token, and says whether
/// this call logged in (`false`: another task had renewed meanwhile).
struct Scripted {
    token: std::sync::Mutex<&'static str>,
    script: std::sync::Mutex<Vec<(&'static str, bool)>>,
}

impl Scripted {
    fn new(first: &'static str, mut script: Vec<(&'static str, bool)>) -> Scripted {
        script.reverse();
        Scripted {
            token: std::sync::Mutex::new(first),
            script: std::sync::Mutex::new(script),
        }
    }
    fn renewals_left(&self) -> usize {
        self.script.lock().unwrap().len()
    }
}

#[async_trait]
impl Session for Scripted {
    async fn authorization(&self) -> Result<String> {
        Ok((*self.token.lock().unwrap()).to_owned())
    }
    async fn renew(&self, _used: &str) -> Result<bool> {
        let (next, logged_in) = self.script.lock().unwrap().pop().expect("a renewal");
        *self.token.lock().unwrap() = next;
        Ok(logged_in)
    }
}

/// Listings sharing one session against a platform whose tokens expire after a few calls:
/// the token another task renewed can expire before this call uses it.
#[tokio::test]
async fn a_renewal_by_another_task_leaves_the_call_its_own() {
    use wiremock::matchers::{any, header};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(header("Authorization", "fresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": 1})))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let options = ClientOptions {
        network: Arc::new(
            mapping_gateway::outbound::NetworkPolicy::with_networks(&["127.0.0.0/8"]).unwrap(),
        ),
        ..Default::default()
    };
    let transport = Transport::new("test", &server.uri(), options, &[]).unwrap();
    let call = |session| transport.request(Method::GET, "x", &[], None, Auth::Session(session));

    let shared = Scripted::new("old", vec![("expired-too", false), ("fresh", true)]);
    let reply = call(&shared).await.expect("renewed by the call itself");
    assert_eq!(reply.body["ok"], 1);
    assert_eq!(shared.renewals_left(), 0);

    // A token refused right after the call's own login is final: no second login.
    let own = Scripted::new("old", vec![("refused", true), ("fresh", true)]);
    assert!(matches!(call(&own).await, Err(Error::PlatformAuth(_))));
    assert_eq!(own.renewals_left(), 1);
}
