//! Arbitrary text as an XGBoost JSON model (what `gbdt_predict` unseals): loading never
//! panics, and a model that loads serialises, loads again and predicts the same.
#![no_main]

use coffer_gbdt::{Booster, DMatrix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(model) = Booster::from_json(text) else {
        return;
    };
    let n = model.num_features().clamp(1, 64);
    let rows: Vec<f32> = (0..n * 2).map(|i| i as f32 - 3.0).collect();
    let Ok(m) = DMatrix::from_row_major(rows, 2, n) else {
        return;
    };
    let first = model.predict(&m);
    let json = model.to_json().expect("a loaded model serialises");
    let again = Booster::from_json(&json).expect("and loads");
    if let Ok(p) = first {
        let q = again.predict(&m).expect("the reloaded model predicts");
        assert_eq!(
            p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            q.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
});
