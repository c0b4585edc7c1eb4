//! Cost of the connection-path lookup (`Signer::token` on a cached key) and of one fresh mint.
//! Targets: cached < 1 µs, mint < 50 µs.

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use criterion::{criterion_group, criterion_main, Criterion};
use rds_iam_signer::{generate_auth_token, Signer, SystemClock, TokenRequest};
use std::hint::black_box;
use std::time::{Instant, SystemTime};

fn creds() -> Credentials {
    Credentials::new(
        "ASIAIOSFODNN7SESSION",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        Some("AQoDYXdzEJr//////////wEaoAK1wvxJY12r2IrDFT2IvAzTCn3zHoZ7YNtpiQLF0MqZye/qwjzP2iEXAMPLE+session/token==".into()),
        None,
        "bench",
    )
}

fn req() -> TokenRequest {
    TokenRequest::new(
        "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com",
        5432,
        "app.reader@example.com",
        "ap-northeast-1",
    )
}

fn bench(c: &mut Criterion) {
    let creds = creds();
    let req = req();
    c.bench_function("mint: generate_auth_token", |b| {
        b.iter(|| {
            generate_auth_token(black_box(&creds), black_box(&req), SystemTime::now()).unwrap()
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signer = Signer::from_provider(SharedCredentialsProvider::new(creds.clone()), SystemClock);
    rt.block_on(signer.token(&req)).unwrap();
    c.bench_function("cached: Signer::token", |b| {
        // One block_on per batch, so the runtime's entry cost is not counted per lookup.
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(signer.token(black_box(&req)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
