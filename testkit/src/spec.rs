//! The sweep spec every end-to-end test and the load generator submit: a synthetic nuclei
//! data set of 32x32 images and a width-8 U-Net trained with the ALL loss, small enough to
//! train in seconds on one CPU thread. Tests choose the name, seeds, epochs, images and grid;
//! the rest stays fixed, so that a test which edits the text (`epochs = 1` to `epochs = 0`)
//! can rely on it.

/// A synthetic-data sweep: `|grid| x |seeds|` trials of `epochs` epochs each.
///
/// ```
/// use allsweep_testkit::SyntheticSpec;
/// let text = SyntheticSpec::new("twelve").seeds(0..6).epochs(2).grid("loss.gamma", "[0.1, 0.3]").to_toml();
/// assert!(text.contains("seeds = [0, 1, 2, 3, 4, 5]") && text.contains("\"loss.gamma\" = [0.1, 0.3]"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// The sweep's name (`name = ...`).
    pub name: String,
    /// One trial per seed at each grid point.
    pub seeds: Vec<u64>,
    /// `train.epochs`.
    pub epochs: u32,
    /// `dataset.images`: how many synthetic images (split into train, validation and test).
    pub images: u32,
    /// The `[grid]` table: each axis as its key (a dotted path such as `loss.gamma`) and its
    /// values written as a TOML array (`[0.1, 0.3]`, `[{kind = "dice"}, {kind = "all"}]`).
    pub grid: Vec<(String, String)>,
}

impl SyntheticSpec {
    /// One seed (0), one epoch, 16 images, no grid.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), seeds: vec![0], epochs: 1, images: 16, grid: Vec::new() }
    }

    pub fn seeds(mut self, seeds: impl IntoIterator<Item = u64>) -> Self {
        self.seeds = seeds.into_iter().collect();
        self
    }

    pub fn epochs(mut self, epochs: u32) -> Self {
        self.epochs = epochs;
        self
    }

    pub fn images(mut self, images: u32) -> Self {
        self.images = images;
        self
    }

    /// Adds a grid axis: `key` (a dotted path) over `values` (a TOML array, as written).
    pub fn grid(mut self, key: impl Into<String>, values: impl Into<String>) -> Self {
        self.grid.push((key.into(), values.into()));
        self
    }

    /// The spec as `allsweep submit` and `allsweep run` read it.
    pub fn to_toml(&self) -> String {
        let Self { name, seeds, epochs, images, grid } = self;
        let mut text = format!(
            r#"name = {name:?}
seeds = {seeds:?}

[dataset]
kind = "synthetic"
shape = "nuclei"
images = {images}
foreground = 0.2
size = [32, 32]

[model]
arch = "unet"
width = 8

[train]
epochs = {epochs}
batch_size = 4
lr = 3e-3

[loss]
kind = "all"
"#
        );
        if !grid.is_empty() {
            text.push_str("\n[grid]\n");
            for (key, values) in grid {
                text.push_str(&format!("{key:?} = {values}\n"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_toml_with_the_chosen_values_and_the_fixed_rest() {
        let text = SyntheticSpec::new("load test").seeds([3, 5]).epochs(4).images(48).to_toml();
        let spec: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(spec["name"].as_str(), Some("load test"));
        assert_eq!(spec["seeds"], toml::Value::Array(vec![3.into(), 5.into()]));
        assert_eq!(spec["train"]["epochs"].as_integer(), Some(4));
        assert_eq!(spec["dataset"]["images"].as_integer(), Some(48));
        assert_eq!(spec["dataset"]["kind"].as_str(), Some("synthetic"));
        assert_eq!(spec["loss"]["kind"].as_str(), Some("all"));
        assert!(!spec.contains_key("grid"), "no grid unless asked");
    }

    #[test]
    fn grid_axes_keep_dotted_keys_whole_and_values_as_written() {
        let text = SyntheticSpec::new("g")
            .grid("loss.gamma", "[0.1, 0.3]")
            .grid("loss", r#"[{kind = "dice"}, {kind = "all", gamma = 0.3}]"#)
            .to_toml();
        let spec: toml::Table = text.parse().expect("valid TOML");
        let grid = spec["grid"].as_table().expect("a [grid] table");
        assert_eq!(grid.keys().collect::<Vec<_>>(), ["loss.gamma", "loss"], "one key per axis, in order");
        assert_eq!(grid["loss.gamma"], toml::Value::Array(vec![0.1.into(), 0.3.into()]));
        assert_eq!(grid["loss"][1]["gamma"].as_float(), Some(0.3));
    }
}
