//! How values become index columns and back: the config fields stored as JSON text
//! (`configs.env`, `cmd` and `entrypoint` as arrays, `labels` as an object). A column that does
//! not decode means an edited or damaged index: [`Error::CorruptCache`].

use crate::error::{Error, Result};
use crate::index::ConfigRow;
use crate::oci::{ConfigInfo, Digest};

/// A JSON object (the labels of a config).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

impl ConfigRow {
    /// The row recording `config`, the config of digest `digest`.
    pub fn encode(digest: &Digest, config: &ConfigInfo) -> ConfigRow {
        let list = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|v| serde_json::Value::from(v.clone()).to_string())
        };
        ConfigRow {
            digest: digest.to_string(),
            env: list(&config.env),
            cmd: list(&config.cmd),
            entrypoint: list(&config.entrypoint),
            working_dir: config.working_dir.clone(),
            user: config.user.clone(),
            labels: config
                .labels
                .as_ref()
                .map(|l| serde_json::Value::Object(l.clone()).to_string()),
            stop_signal: config.stop_signal.clone(),
        }
    }

    /// `Env`, decoded.
    pub fn env(&self) -> Result<Option<Vec<String>>> {
        self.decode(&self.env, "env")
    }

    /// `Cmd`, decoded.
    pub fn cmd(&self) -> Result<Option<Vec<String>>> {
        self.decode(&self.cmd, "cmd")
    }

    /// `Entrypoint`, decoded.
    pub fn entrypoint(&self) -> Result<Option<Vec<String>>> {
        self.decode(&self.entrypoint, "entrypoint")
    }

    /// `Labels`, decoded.
    pub fn labels(&self) -> Result<Option<JsonObject>> {
        self.decode(&self.labels, "labels")
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        column: &Option<String>,
        field: &str,
    ) -> Result<Option<T>> {
        column
            .as_deref()
            .map(|text| {
                serde_json::from_str(text).map_err(|_| Error::CorruptCache {
                    reason: format!("config {} has malformed {field}", self.digest),
                })
            })
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn config_columns_round_trip_and_damage_is_corrupt_cache() {
        let mut labels = JsonObject::new();
        labels.insert("a".into(), serde_json::json!("b"));
        let config = ConfigInfo {
            env: Some(vec!["PATH=/bin".into(), "X=a\"b".into()]),
            cmd: Some(vec![]),
            entrypoint: None,
            labels: Some(labels.clone()),
            ..ConfigInfo::default()
        };
        let digest = Digest::of_bytes(b"config");
        let row = ConfigRow::encode(&digest, &config);
        assert_eq!(row.digest, digest.to_string());
        assert_eq!(row.env().unwrap(), config.env);
        assert_eq!(row.cmd().unwrap(), Some(vec![]));
        assert_eq!(row.entrypoint().unwrap(), None);
        assert_eq!(row.labels().unwrap(), Some(labels));
        let damaged = ConfigRow {
            env: Some("[not json".into()),
            ..row
        };
        assert_eq!(damaged.env().unwrap_err().code(), "CORRUPT_CACHE");
    }
}
