//! The scans against brute-force models: random operations, the int8
//! pre-scan against the exact scan, and the quantisation bounds.

use super::*;

/// Random operations against a brute-force float64 model.
#[test]
fn randomized_against_reference() {
    let (_dir, mut s) = open_temp("random");
    let mut seed = 42u64;
    let mut rnd = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let dim = 19;
    let mut model: std::collections::HashMap<String, (Vec<f32>, String, f64)> = std::collections::HashMap::new();
    for round in 0..30 {
        let mut recs = Vec::new();
        for _ in 0..20 {
            let id = format!("id{}", rnd(120));
            let scale = [0.01f32, 1.0, 100.0][rnd(3) as usize];
            let e: Vec<f32> = (0..dim).map(|_| (rnd(2001) as f32 - 1000.0) / 1000.0 * scale).collect();
            let scope = format!("/s{}", rnd(4));
            let ts = rnd(50) as f64;
            recs.push(rec(
                &id,
                &format!("w{} w{}", rnd(10), rnd(10)),
                &scope,
                &[],
                ts,
                Some(&e),
            ));
            model.insert(id, (e, scope, ts));
        }
        save(&mut s, &recs);
        if round % 3 == 2 {
            let scope = format!("/s{}", rnd(4));
            let n = s
                .delete(&format!("{{\"scope_prefix\":\"{scope}\",\"older_than\":25}}"))
                .unwrap();
            let before = model.len();
            model.retain(|_, (_, sc, ts)| !(*sc == scope && *ts < 25.0));
            assert_eq!(n as usize, before - model.len());
            s.check();
        }
        let q: Vec<f32> = (0..dim).map(|_| (rnd(2001) as f32 - 1000.0) / 1000.0).collect();
        let filter_scope = format!("/s{}", rnd(4));
        for (filter, scope) in [
            ("{}".to_owned(), None),
            (format!("{{\"scope_prefix\":\"{filter_scope}\"}}"), Some(&filter_scope)),
        ] {
            let got = search(&mut s, &q, &filter, 7);
            let mut want: Vec<(f64, &String)> = model
                .iter()
                .filter(|(_, (_, sc, _))| scope.is_none_or(|p| sc == p))
                .map(|(id, (e, _, _))| {
                    let d: f64 = e
                        .iter()
                        .zip(&q)
                        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                        .sum();
                    (1.0 / (1.0 + d), id)
                })
                .collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0));
            want.truncate(7);
            let got_scores = scores_of(&got);
            assert_eq!(got_scores.len(), want.len());
            for (g, (w, _)) in got_scores.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
    }
    assert_eq!(s.count(None).unwrap() as usize, model.len());
}

#[test]
fn quantized_scan_matches_exact_scan() {
    // Whole 16-element blocks only, and blocks plus a tail.
    for dim in [96, 101] {
        quantized_scan_matches_exact_scan_at(dim);
    }
}

fn quantized_scan_matches_exact_scan_at(dim: usize) {
    let (dir, mut store) = open_temp("quantized");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut recs = Vec::new();
    for i in 0..1600 {
        let kind = (next() * 10.0) as u32;
        let v: Option<Vec<f32>> = match kind {
            // Small integers: many exactly tied distances.
            0 | 1 => Some((0..dim).map(|_| (next() * 3.0).floor() as f32 - 1.0).collect()),
            // A duplicate or a near-duplicate of an earlier vector.
            2 if !vectors.is_empty() => {
                let base = vectors[(next() * vectors.len() as f64) as usize].clone();
                Some(base.iter().map(|x| x + if next() < 0.5 { 0.0 } else { 1e-6 }).collect())
            }
            3 => Some(vec![0.0; dim]),
            4 => None,
            // Large and tiny magnitudes.
            5 => Some((0..dim).map(|_| ((next() - 0.5) * 1e4) as f32).collect()),
            6 => Some((0..dim).map(|_| ((next() - 0.5) * 1e-30) as f32).collect()),
            _ => Some((0..dim).map(|_| (next() - 0.5) as f32).collect()),
        };
        if let Some(v) = &v {
            vectors.push(v.clone());
        }
        let scope = ["/a", "/a/b", "/c"][i % 3];
        let cats: &[&str] = if i % 4 == 0 { &["x"] } else { &["y"] };
        recs.push(rec(&format!("r{i}"), "text", scope, cats, i as f64, v.as_deref()));
    }
    save(&mut store, &recs);
    // Replace some records and delete others to move rows around.
    let again: Vec<String> = (0..200)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| (next() - 0.5) as f32).collect();
            vectors.push(v.clone());
            rec(
                &format!("r{}", i * 7),
                "text",
                "/a",
                &["x"],
                5000.0 + i as f64,
                Some(&v),
            )
        })
        .collect();
    save(&mut store, &again);
    store.delete(r#"{"older_than": 100}"#).unwrap();
    store.check();
    let reopened = Store::open(&dir.db()).unwrap();
    reopened.check();
    let filters = [
        "{}",
        r#"{"scope_prefix": "/a"}"#,
        r#"{"categories": ["x"]}"#,
        r#"{"ids": ["r101", "r102", "r700", "r7", "nope"]}"#,
        r#"{"scope_prefix": "/c", "categories": ["y"]}"#,
    ];
    let mut compared = 0;
    for t in 0..60 {
        let q: Vec<f32> = match t % 6 {
            0 => vec![0.0; dim],
            1 | 2 => vectors[(next() * vectors.len() as f64) as usize].clone(),
            3 => (0..dim).map(|_| (next() * 3.0).floor() as f32 - 1.0).collect(),
            4 => (0..dim).map(|_| ((next() - 0.5) * 1e3) as f32).collect(),
            _ => (0..dim).map(|_| (next() - 0.5) as f32).collect(),
        };
        for f in filters {
            let filter = Filter::parse(f).unwrap();
            for k in [1usize, 3, 10, 57, 5000] {
                for min_score in [0.0, -1.0, 0.01, 0.2, 0.999_999, 1.0] {
                    for s in [&store, &reopened] {
                        let exact = vector_top_k_exact(&s.index, &q, &filter, k, min_score);
                        let fast = vector_top_k_quantized(&s.index, &q, &filter, k, min_score).unwrap();
                        let bits = |h: &[(usize, f64)]| -> Vec<(String, u64)> {
                            h.iter()
                                .map(|&(r, sc)| (s.index.record(r).id.clone(), sc.to_bits()))
                                .collect()
                        };
                        assert_eq!(
                            bits(&exact),
                            bits(&fast),
                            "dim {dim}, query {t}, filter {f}, k {k}, min {min_score}"
                        );
                        assert_eq!(bits(&vector_top_k(&s.index, &q, &filter, k, min_score)), bits(&exact));
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 0);
}

#[test]
fn quantize_bounds_hold() {
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    };
    // Float32's own range too: the residual is measured in float32.
    for (dim, magnitude) in [1usize, 15, 16, 17, 384, 1536]
        .into_iter()
        .flat_map(|d| [(d, 3.0f32), (d, 1e-36), (d, 1e36)])
    {
        let x: Vec<f32> = (0..dim).map(|_| next() * magnitude).collect();
        let mut q = vec![0i8; dim];
        let z = kernel::quantize(&x, &mut q);
        let r: f64 = x
            .iter()
            .zip(&q)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b) * f64::from(z.scale)).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(r <= z.err);
        let dot: i64 = q.iter().map(|&v| i64::from(v) * i64::from(v)).sum();
        assert_eq!(i64::from(z.sq), dot);
        assert_eq!(i64::from(z.sum), q.iter().map(|&v| i64::from(v)).sum::<i64>());
        // The query's 14-bit code: its residual bound holds, and its dot
        // product with the row's int8 copy is exact.
        let y: Vec<f32> = (0..dim).map(|_| next() * 5.0).collect();
        let code = kernel::QueryCode::new(&y);
        let big: Vec<f64> = y.iter().map(|&v| (f64::from(v) / code.scale).round()).collect();
        let ry: f64 = y
            .iter()
            .zip(&big)
            .map(|(a, b)| (f64::from(*a) - b * code.scale).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(ry <= code.err, "dim {dim}: {ry} > {}", code.err);
        assert!(code.err <= 1e-3 * kernel::norm(&y), "dim {dim}: {}", code.err);
        assert_eq!(code.sq, big.iter().map(|b| b * b).sum::<f64>());
        let want: f64 = big.iter().zip(&q).map(|(b, &v)| b * f64::from(v)).sum();
        let high = code.dot_high(&q, &z);
        assert_eq!(code.dot(&q, &z, high), want);
        // The coarse code: the high digits, `Q_i / 126` rounded.
        let digits: Vec<f64> = big.iter().map(|b| ((b + 63.0) / 126.0).floor()).collect();
        assert!(digits.iter().all(|d| d.abs() <= 63.0));
        assert_eq!(code.high_sq, digits.iter().map(|d| d * d).sum::<f64>());
        let high_want: f64 = digits.iter().zip(&q).map(|(d, &v)| d * f64::from(v)).sum();
        assert_eq!(high as f64, high_want);
        let rh: f64 = y
            .iter()
            .zip(&digits)
            .map(|(a, d)| (f64::from(*a) - 126.0 * d * code.scale).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(rh <= code.high_err, "dim {dim}: {rh} > {}", code.high_err);
    }
}
