//! The per-epoch training log: `log.csv` (`epoch,stage,phase,lr,train_loss,tune_dice,
//! tune_nsd,seconds`) and `curves.png` (loss and tuning Dice/NSD against the epoch), both
//! rewritten atomically after every epoch from the rows the checkpoint holds, so a resumed run's
//! log continues exactly where the checkpoint ends.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::train::checkpoint::write_atomic;
use crate::train::plot::{render, Panel, Series};

/// The CSV header.
pub const CSV_HEADER: &str = "epoch,stage,phase,lr,train_loss,tune_dice,tune_nsd,seconds";

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based, over the whole run.
    pub epoch: usize,
    /// 1-based stage.
    pub stage: usize,
    /// 1-based phase within the stage.
    pub phase: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean tuning Dice (NaN without tuning cases); serialised as `null` when NaN.
    #[serde(with = "nan_as_null")]
    pub tune_dice: f64,
    /// Mean tuning NSD at the recipe's tolerance.
    #[serde(with = "nan_as_null")]
    pub tune_nsd: f64,
    /// Wall time of the epoch, training and tuning, seconds.
    pub seconds: f64,
}

/// JSON has no NaN: store it as `null`.
pub(crate) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// The CSV text of `rows`.
pub fn to_csv(rows: &[EpochRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{:e},{:.6},{:.6},{:.6},{:.3}\n",
            r.epoch, r.stage, r.phase, r.lr, r.train_loss, r.tune_dice, r.tune_nsd, r.seconds
        ));
    }
    out
}

/// The loss and tuning-score chart of `rows` as PNG.
pub fn plot(rows: &[EpochRow]) -> anyhow::Result<Vec<u8>> {
    let points = |f: fn(&EpochRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let loss = Panel {
        title: "training loss".into(),
        x_label: "epoch".into(),
        series: vec![Series {
            label: "train".into(),
            color: [200, 40, 40],
            points: points(|r| r.train_loss),
            markers: rows.len() == 1,
        }],
        y_range: None,
    };
    let scores = Panel {
        title: "tuning scores".into(),
        x_label: "epoch".into(),
        series: vec![
            Series {
                label: "dice".into(),
                color: [30, 90, 200],
                points: points(|r| r.tune_dice),
                markers: rows.len() == 1,
            },
            Series {
                label: "nsd".into(),
                color: [20, 150, 60],
                points: points(|r| r.tune_nsd),
                markers: rows.len() == 1,
            },
        ],
        y_range: Some((0.0, 1.0)),
    };
    render(&[loss, scores], 560, 380)
}

/// Writes `log.csv` and `curves.png` into `output`.
pub fn write(output: &Path, rows: &[EpochRow]) -> anyhow::Result<()> {
    write_atomic(&output.join("log.csv"), to_csv(rows).as_bytes())?;
    write_atomic(&output.join("curves.png"), &plot(rows)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_and_nan_round_trip() {
        let row = EpochRow {
            epoch: 3,
            stage: 1,
            phase: 2,
            lr: 1e-3,
            train_loss: 0.5,
            tune_dice: f64::NAN,
            tune_nsd: 0.25,
            seconds: 1.5,
        };
        assert_eq!(
            to_csv(&[row.clone()]),
            format!("{CSV_HEADER}\n3,1,2,1e-3,0.500000,NaN,0.250000,1.500\n")
        );
        let json = serde_json::to_string(&row).expect("json");
        assert!(json.contains("\"tune_dice\":null"), "{json}");
        let back: EpochRow = serde_json::from_str(&json).expect("parse");
        assert!(back.tune_dice.is_nan());
        assert_eq!(back.tune_nsd, 0.25);
    }
}
