//! Micro-benchmarks of the hot-path codecs, each beside the baseline it replaced or avoided:
//! - `timestamp`: our hand-written ISO-8601 format and parse against the `time` crate's;
//! - `request`: parsing a contest `POST /payments` (head with httparse, body with serde_json);
//! - `summary`: writing a summary JSON.
//!
//! `cargo bench --bench codec`. Numbers are per operation; compare within one run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use payrelay::{
    http::{self, Limits},
    ledger::{ShardSummary, Totals},
    payment, summary,
    timestamp::{self, Round},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

const REQUEST: &[u8] =
    b"POST /payments HTTP/1.1\r\nHost: localhost:9999\r\nUser-Agent: k6/1.1.0\r\n\
Content-Type: application/json\r\nContent-Length: 70\r\n\r\n\
{\"correlationId\":\"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3\",\"amount\":19.9}";

fn timestamps(c: &mut Criterion) {
    let ms = 1_752_582_896_789i64;
    let text = timestamp::format_iso(ms);
    let text_str = std::str::from_utf8(&text).unwrap().to_owned();
    let mut group = c.benchmark_group("timestamp");
    group.bench_function("format/ours", |b| b.iter(|| timestamp::format_iso(black_box(ms))));
    group.bench_function("format/time", |b| {
        b.iter(|| {
            let dt =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(black_box(ms)) * 1_000_000)
                    .unwrap();
            dt.format(&Rfc3339).unwrap()
        })
    });
    group.bench_function("parse/ours", |b| {
        b.iter(|| timestamp::parse_iso(black_box(&text), Round::Down))
    });
    group.bench_function("parse/time", |b| {
        // Both sides end at milliseconds since the epoch, which is what the summary needs.
        b.iter(|| {
            OffsetDateTime::parse(black_box(&text_str), &Rfc3339).unwrap().unix_timestamp_nanos()
                / 1_000_000
        })
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    let limits = Limits { head_bytes_max: 8192, body_bytes_max: 4096 };
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function("parse_head_and_body", |b| {
        b.iter(|| match http::parse_request(black_box(REQUEST), limits) {
            http::Parsed::Complete(req, _) => payment::decode(req.body).is_ok(),
            _ => false,
        })
    });
    group.finish();
}

fn summary_json(c: &mut Criterion) {
    let totals = ShardSummary {
        by_processor: [
            Totals { count: 52_945, cents: 106_154_725 },
            Totals { count: 37_646, cents: 75_480_230 },
        ],
    };
    let mut out = Vec::with_capacity(256);
    c.bench_function("summary/write_json", |b| {
        b.iter(|| {
            out.clear();
            summary::write_json(&mut out, black_box(&totals));
            out.len()
        })
    });
}

criterion_group!(benches, timestamps, request, summary_json);
criterion_main!(benches);
