//! The caps on unpacking archive layers (`pull`, and `verify --component` of a path inside
//! an archive), as flags: one archive over any of them is refused whole, with a message
//! naming the cap and the flag that raises it.

use modelsign::Error;
use modelsign::unpack::Limits;

/// `--max-unpack-*` flags; each defaults to [`Limits::default`].
#[derive(clap::Args, Clone, Default)]
pub struct UnpackLimitArgs {
    /// Archive layers: most files and folders in one archive [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_unpack_entries: Option<u64>,
    /// Archive layers: largest single file, e.g. 64GiB [default: 1TiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_unpack_file_size: Option<u64>,
    /// Archive layers: most bytes of all files of one archive, e.g. 200GiB [default: 4TiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_unpack_size: Option<u64>,
    /// Archive layers: most uncompressed bytes per compressed byte, beyond the first 64 MiB
    /// (decompression bombs) [default: 100].
    #[arg(long, value_name = "N")]
    pub max_unpack_ratio: Option<u64>,
}

impl UnpackLimitArgs {
    /// The caps, defaults for what was not given. Zero is refused: it would refuse everything.
    pub fn limits(&self) -> Result<Limits, Error> {
        let d = Limits::default();
        let positive = |v: Option<u64>, default: u64, flag: &str| match v {
            Some(0) => Err(Error::InvalidArguments(format!("{flag} must be more than 0"))),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        Ok(Limits {
            max_entries: positive(self.max_unpack_entries, d.max_entries, "--max-unpack-entries")?,
            max_entry_size: positive(self.max_unpack_file_size, d.max_entry_size, "--max-unpack-file-size")?,
            max_total_size: positive(self.max_unpack_size, d.max_total_size, "--max-unpack-size")?,
            max_ratio: positive(self.max_unpack_ratio, d.max_ratio, "--max-unpack-ratio")?,
            ratio_allowance: d.ratio_allowance,
        })
    }
}

/// `123`, `64K`, `64KiB`, `1.5GiB`, `4T` (binary units: K = 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB or TiB)")),
    };
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size (e.g. 64GiB)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4 TiB"), Ok(4 << 40));
        assert!(parse_size("12 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1e30T").is_err());
    }
}
