//! A deterministic plant over Fortaleza (CE): projects, boxes with one to four splitters, ports
//! with a status mix and customers with valid CPF/CNPJ. The same seed and size give the same
//! network.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::store::Store;

/// Fortaleza's urban area: (min lat, min lng, max lat, max lng).
pub const CITY_BBOX: (f64, f64, f64, f64) = (-3.86, -38.62, -3.70, -38.45);

const PROJECTS: [&str; 3] = ["Projeto Centro", "Projeto Aldeota", "Projeto Messejana"];
const FIRST: [&str; 12] = [
    "Ana",
    "João",
    "Maria",
    "José",
    "Francisca",
    "Antônio",
    "Raimunda",
    "Francisco",
    "Luzia",
    "Carlos",
    "Fernanda",
    "Paulo",
];
const LAST: [&str; 10] = [
    "Silva",
    "Sousa",
    "Oliveira",
    "Lima",
    "Pereira",
    "Costa",
    "Rodrigues",
    "Almeida",
    "Nascimento",
    "Araújo",
];

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// fids of the projects, the largest first.
    pub projects: Vec<i64>,
    /// Boxes (`cto` + `caixaEmenda`).
    pub boxes: usize,
    /// Splitters.
    pub splitters: usize,
    /// Ports.
    pub ports: usize,
}

fn iso(t: DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Fills `store` with a network of about `boxes` boxes, 80% of them in the first project.
pub fn generate(store: &mut Store, seed: u64, boxes: usize, now: DateTime<Utc>) -> Summary {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut summary = Summary::default();
    let changed = |rng: &mut StdRng| iso(now - Duration::minutes(rng.gen_range(60..525_600)));
    for name in PROJECTS {
        let t = changed(&mut rng);
        summary
            .projects
            .push(store.insert("projeto", &[("nome", json!(name)), ("dataAlteracao", t)]));
    }
    let shares = [
        boxes * 8 / 10,
        boxes * 15 / 100,
        boxes - boxes * 8 / 10 - boxes * 15 / 100,
    ];
    let mut contract = 100_000u64;
    let (min_lat, min_lng, max_lat, max_lng) = CITY_BBOX;
    for (p, &count) in summary.projects.clone().iter().zip(shares.iter()) {
        for b in 0..count {
            let lat = rng.gen_range(min_lat..max_lat);
            let lng = rng.gen_range(min_lng..max_lng);
            let is_cto = rng.gen_bool(0.85);
            let (feature, prefix) = if is_cto {
                ("cto", "CTO")
            } else {
                ("caixaEmenda", "CEO")
            };
            let t = changed(&mut rng);
            let box_fid = store.insert(
                feature,
                &[
                    ("nome", json!(format!("{prefix}-{p}-{:05}", b + 1))),
                    ("fidProjeto", json!(p)),
                    ("geometry", json!(format!("POINT ({lng:.6} {lat:.6})"))),
                    ("dataAlteracao", t),
                ],
            );
            summary.boxes += 1;
            if b % 4 == 0 {
                let t = changed(&mut rng);
                store.insert(
                    "poste",
                    &[
                        ("nome", json!(format!("POSTE-{p}-{:05}", b / 4 + 1))),
                        ("fidProjeto", json!(p)),
                        (
                            "geometry",
                            json!(format!("POINT ({:.6} {:.6})", lng + 0.0001, lat)),
                        ),
                        ("dataAlteracao", t),
                    ],
                );
            }
            if b % 500 == 0 {
                let t = changed(&mut rng);
                store.insert(
                    "estacao",
                    &[
                        ("nome", json!(format!("POP-{p}-{:03}", b / 500 + 1))),
                        ("fidProjeto", json!(p)),
                        (
                            "geometry",
                            json!(format!("POINT ({lng:.6} {:.6})", lat + 0.0002)),
                        ),
                        ("dataAlteracao", t),
                    ],
                );
            }
            let splitters = match rng.gen_range(0..10) {
                0..=3 => 1,
                4..=6 => 2,
                7..=8 => 3,
                _ => 4,
            };
            for s in 0..splitters {
                let service = if is_cto {
                    rng.gen_bool(0.8)
                } else {
                    rng.gen_bool(0.1)
                };
                let outputs = if rng.gen_bool(0.5) { 8 } else { 16 };
                let t = changed(&mut rng);
                let splitter_fid = store.insert(
                    "splitter",
                    &[
                        ("nome", json!(format!("SPL-{box_fid}-{}", s + 1))),
                        ("fidProjeto", json!(p)),
                        ("fidCaixa", json!(box_fid)),
                        (
                            "tipo",
                            json!(if service {
                                "Atendimento"
                            } else {
                                "Distribuição"
                            }),
                        ),
                        ("relacao", json!(format!("1:{outputs}"))),
                        ("dataAlteracao", t),
                    ],
                );
                summary.splitters += 1;
                for n in 1..=outputs {
                    let roll = rng.gen_range(0..100);
                    let status = match roll {
                        0..=54 => "LIVRE",
                        55..=89 => "OCUPADA",
                        90..=95 => "RESERVADA",
                        _ => "DANIFICADA",
                    };
                    let t = changed(&mut rng);
                    let mut fields = vec![
                        ("fidSplitter", json!(splitter_fid)),
                        ("fidProjeto", json!(p)),
                        ("numero", json!(n)),
                        ("status", json!(status)),
                        ("dataAlteracao", t),
                    ];
                    if status == "OCUPADA" {
                        contract += 1;
                        let document = if rng.gen_bool(0.8) {
                            let cpf: cpf::Cpf = rng.gen();
                            if rng.gen_bool(0.5) {
                                cpf.to_string()
                            } else {
                                cpf.as_str().to_owned()
                            }
                        } else {
                            let cnpj: cnpj::Cnpj = rng.gen();
                            cnpj.to_string()
                        };
                        let name = format!(
                            "{} {}",
                            FIRST[rng.gen_range(0..FIRST.len())],
                            LAST[rng.gen_range(0..LAST.len())]
                        );
                        fields.push(("contrato", json!(contract.to_string())));
                        fields.push(("documento", json!(document)));
                        fields.push(("nomeCliente", json!(name)));
                    }
                    store.insert("portaSplitter", &fields);
                    summary.ports += 1;
                }
            }
        }
    }
    summary
}
