//! What a platform says reaches people (API answers, the history, logs): an escape sequence,
//! a newline or a bidirectional override in it is replaced by U+FFFD wherever it is kept,
//! answered or logged, so a hostile platform can neither forge log lines nor colour a terminal.

mod common;

use common::{Engine, TestApp};
use serde_json::json;

const HOSTILE: &str = "\u{1b}[31mFAKE\nERROR password=x\u{202E}";

fn plain(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() || c == '\u{202E}')
}

on_both_engines! {
    /// A platform whose refusal carries an escape, a newline and an override: the connection
    /// test's message and the history's line hold none of them, nor do the logs.
    async fn a_platform_s_error_text_is_made_plain(app: TestApp) {
        use wiremock::matchers::any;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({ "message": HOSTILE })))
            .mount(&server)
            .await;
        let id = app.create_integration(&common::unique("hostil"), &server.uri()).await;
        let test = app
            .ok("mutation($i: ID!) { testIntegration(id: $i) { ok message } }", json!({ "i": id }))
            .await;
        let message = test["testIntegration"]["message"].as_str().unwrap();
        assert_eq!(test["testIntegration"]["ok"], false);
        assert!(message.contains("FAKE") && plain(message), "{message:?}");
        let history = app
            .ok("query($i: ID!) { history(integrationId: $i, first: 10) { edges { node { summary } } } }", json!({ "i": id }))
            .await;
        let summaries: Vec<&str> = history["history"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["summary"].as_str().unwrap())
            .collect();
        assert!(summaries.iter().any(|s| s.contains("FAKE")), "{summaries:?}");
        assert!(summaries.iter().all(|s| plain(s)), "{summaries:?}");
        let logs = common::captured_logs();
        assert!(!logs.contains('\u{1b}') && !logs.contains("FAKE\nERROR"), "the logs carry the raw text");
    }

    /// Names and customers a platform lists are kept plain: the API answers them without the
    /// escape or newline, and a sync with nothing changed leaves them as they are.
    async fn listed_platform_text_is_kept_plain(app: TestApp) {
        let w = common::world::world(&app, 10).await;
        let cto = common::world::fids(&w.sim, "cto", w.project, |_| true)[0];
        w.save("cto", cto, &[("nome", json!(format!("CTO {HOSTILE}")))]);
        common::world::succeeded(&app, &w.id, "FULL").await;
        let fid = w.fid("cto", cto);
        let q = "query($i: ID!, $s: String!) { elements(integrationId: $i, filter: { search: $s }) { edges { node { fid name } } } }";
        let found = app.ok(q, json!({ "i": w.id, "s": "fake" })).await;
        let node = &found["elements"]["edges"][0]["node"];
        assert_eq!(node["fid"], fid.as_str());
        let name = node["name"].as_str().unwrap();
        assert!(name.contains("FAKE") && plain(name), "{name:?}");
        let again = common::world::succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(again["counts"]["updated"], 0, "{again}");
    }
}

on_both_engines! {
    /// Integration names have one spelling, as contracts do (NFKC, format characters gone):
    /// "Rede Sul" taken, "Rede\u{200B} Sul" and the fullwidth "Ｒｅｄｅ Sul" are the same name.
    async fn integration_names_are_unique_as_a_person_reads_them(app: TestApp) {
        let name = common::unique("Rede Sul ");
        app.create_integration(&name, "https://rede.example").await;
        let create = "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }";
        let fullwidth: String = name
            .chars()
            .map(|c| match c {
                'R' => 'Ｒ',
                'e' => 'ｅ',
                other => other,
            })
            .collect();
        for spelling in [name.replacen(' ', "\u{200B} ", 1), fullwidth] {
            let code = app
                .error_code(
                    Some(&app.admin_key),
                    create,
                    json!({ "input": { "name": spelling, "gateway": "GEOSITE", "apiUrl": "https://rede.example",
                                       "username": "u", "password": "p" } }),
                )
                .await;
            assert_eq!(code, "CONFLICT", "{spelling:?}");
        }
    }
}
