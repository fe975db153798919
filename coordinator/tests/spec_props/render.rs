//! One sweep spec, as values ([`SpecValue`]), written out as TOML text in any of the ways a
//! person might write it: key and section order, whitespace, comments, standard, inline and
//! dotted tables, the four string quotings, quoted and bare keys, integers in decimal, hex,
//! octal and binary, the same decimal number in plain and scientific notation, defaults
//! written out or left out, the seeds in any order, and the grid's axes in any order and any
//! of its table forms. Every way is chosen by a seed ([`render`]), so a failing case names
//! the two texts.

/// A decimal number `mantissa x 10^exponent`: every way of writing it parses to one `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decimal {
    pub mantissa: u32,
    pub exponent: i32,
}

pub const fn dec(mantissa: u32, exponent: i32) -> Decimal {
    Decimal { mantissa, exponent }
}

/// One value of a grid axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    Int(u32),
    Dec(Decimal),
    Str(&'static str),
}

/// A grid axis: a dotted key into a trial section and its values, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: &'static str,
    pub values: Vec<Val>,
}

/// What a spec says, apart from how it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecValue {
    pub name: &'static str,
    /// Distinct.
    pub seeds: Vec<u32>,
    pub max_attempts: u32,
    pub keep_checkpoints: bool,
    pub images: u32,
    pub foreground: Decimal,
    pub arch: &'static str,
    pub width: u32,
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: Decimal,
    pub gamma: Decimal,
    pub omega: Decimal,
    /// Distinct keys, distinct values within an axis.
    pub grid: Vec<Axis>,
}

/// The choices of one way of writing, from a seed (splitmix64).
pub struct Writer(u64);

impl Writer {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    fn ws(&mut self) -> &'static str {
        self.pick(&["", " ", " ", "  ", "\t"])
    }

    /// The end of a line: maybe trailing blanks or a comment, maybe a blank line after.
    fn eol(&mut self) -> String {
        let mut end = String::from(self.pick(&["", "", " ", "\t"]));
        if self.chance(20) {
            end.push_str(self.pick(&["# a note", "  # why: \"quoted\" = [1]", "#", " # [grid] x = 1"]));
        }
        end.push('\n');
        if self.chance(15) {
            end.push_str(self.pick(&["\n", "# a comment line\n", "   \n"]));
        }
        end
    }

    fn key(&mut self, key: &str) -> String {
        match self.below(4) {
            0 => format!("\"{key}\""),
            1 => format!("'{key}'"),
            _ => key.to_string(),
        }
    }

    fn string(&mut self, s: &str) -> String {
        match self.below(5) {
            0 => format!("'{s}'"),
            1 => format!("\"\"\"{s}\"\"\""),
            2 => format!("'''{s}'''"),
            _ => format!("\"{s}\""),
        }
    }

    fn int(&mut self, n: u32) -> String {
        match self.below(7) {
            0 => format!("0x{n:x}"),
            1 => format!("0x{n:02X}"),
            2 => format!("0o{n:o}"),
            3 => format!("0b{n:b}"),
            4 => format!("+{n}"),
            5 if n >= 10 => format!("{}_{}", n / 10, n % 10),
            _ => n.to_string(),
        }
    }

    /// A decimal in one of its notations; one with a whole value may be written as an integer.
    fn decimal(&mut self, d: Decimal) -> String {
        let digits = d.mantissa.to_string();
        let zeros = "0".repeat(self.below(3));
        match self.below(6) {
            // 25 x 10^-5 as 25e-5, 25E-05, 2.5e-4, 250e-6
            0 => format!("{digits}e{}", d.exponent),
            1 => format!("{digits}E{}{:02}", if d.exponent < 0 { "-" } else { "+" }, d.exponent.abs()),
            2 if digits.len() > 1 => {
                let exponent = d.exponent + digits.len() as i32 - 1;
                format!("{}.{}{zeros}e{exponent}", &digits[..1], &digits[1..])
            }
            3 => format!("{digits}{zeros}e{}", d.exponent - zeros.len() as i32),
            4 if d.exponent >= 0 => format!("{digits}{}", "0".repeat(d.exponent as usize)),
            _ => {
                // Plain notation, always with a point: 0.00025, 6.0, 12.50
                let places = (-d.exponent).max(0) as usize;
                let whole = format!("{digits}{}", "0".repeat(d.exponent.max(0) as usize));
                let padded = format!("{}{whole}", "0".repeat((places + 1).saturating_sub(whole.len())));
                let (int, frac) = padded.split_at(padded.len() - places);
                let frac = if frac.is_empty() { "0".to_string() } else { frac.to_string() };
                format!("{int}.{frac}{zeros}")
            }
        }
    }

    fn val(&mut self, v: Val) -> String {
        match v {
            Val::Int(n) => self.int(n),
            Val::Dec(d) => self.decimal(d),
            Val::Str(s) => self.string(s),
        }
    }

    fn array(&mut self, items: Vec<String>) -> String {
        let multiline = self.chance(25);
        let mut out = String::from("[");
        for (i, item) in items.iter().enumerate() {
            if multiline {
                out.push_str("\n  ");
            } else if i > 0 {
                out.push_str(self.ws());
            }
            out.push_str(item);
            if i + 1 < items.len() || self.chance(20) {
                out.push(',');
            }
        }
        out.push_str(if multiline { "\n]" } else { "]" });
        out
    }
}

/// A table of the spec (a section, or the grid): its name and entries, written by
/// [`place`] in one of the forms TOML has.
struct Table {
    name: &'static str,
    entries: Vec<(String, String)>,
}

/// Where a table's text goes: at the top (inline and dotted forms, before any header) or
/// after it (standard tables).
fn place(w: &mut Writer, table: Table, top: &mut Vec<String>, below: &mut Vec<String>) {
    let Table { name, mut entries } = table;
    w.shuffle(&mut entries);
    let header = w.key(name);
    match w.below(4) {
        0 => {
            let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{k}{}={}{v}", w.ws(), w.ws())).collect();
            let (a, b) = (w.pick(&["", " "]), w.pick(&["", " "]));
            top.push(format!("{header}{}={}{{{a}{}{b}}}{}", w.ws(), w.ws(), inner.join(", "), w.eol()));
        }
        1 => {
            for (k, v) in entries {
                let dot = w.pick(&[".", " . ", ". "]);
                top.push(format!("{header}{dot}{k}{}={}{v}{}", w.ws(), w.ws(), w.eol()));
            }
        }
        _ => {
            let mut text = format!("{}[{header}]{}", w.pick(&["", "", "\n", "  "]), w.eol());
            for (k, v) in entries {
                text.push_str(&format!("{}{k}{}={}{v}{}", w.pick(&["", "", "  "]), w.ws(), w.ws(), w.eol()));
            }
            below.push(text);
        }
    }
}

/// The spec written the way `seed` chooses.
pub fn render(spec: &SpecValue, seed: u64) -> String {
    let mut w = Writer::new(seed);
    let mut top: Vec<String> = Vec::new();
    let mut below: Vec<String> = Vec::new();
    let name = w.string(spec.name);
    top.push(format!("{}{}={}{name}{}", w.key("name"), w.ws(), w.ws(), w.eol()));
    if spec.seeds != [0] || w.chance(50) {
        let mut seeds: Vec<String> = spec.seeds.iter().map(|&s| w.int(s)).collect();
        w.shuffle(&mut seeds);
        let seeds = w.array(seeds);
        top.push(format!("{}{}={}{seeds}{}", w.key("seeds"), w.ws(), w.ws(), w.eol()));
    }
    if spec.max_attempts != 3 || w.chance(50) {
        let n = w.int(spec.max_attempts);
        top.push(format!("{}{}={}{n}{}", w.key("max_attempts"), w.ws(), w.ws(), w.eol()));
    }
    if spec.keep_checkpoints || w.chance(50) {
        top.push(format!("{} = {}{}", w.key("keep_checkpoints"), spec.keep_checkpoints, w.eol()));
    }
    let mut sections = Vec::new();
    let size = vec![w.int(32), w.int(32)];
    let dataset = vec![
        (w.key("kind"), w.string("synthetic")),
        (w.key("shape"), w.string("nuclei")),
        (w.key("images"), w.int(spec.images)),
        (w.key("foreground"), w.decimal(spec.foreground)),
        (w.key("size"), w.array(size)),
    ];
    sections.push(Table { name: "dataset", entries: dataset });
    let model = vec![(w.key("arch"), w.string(spec.arch)), (w.key("width"), w.int(spec.width))];
    sections.push(Table { name: "model", entries: model });
    let mut train = vec![(w.key("epochs"), w.int(spec.epochs))];
    // The defaults of `[train]` and of the ALL loss may be written out or left out.
    if spec.batch_size != 16 || w.chance(50) {
        train.push((w.key("batch_size"), w.int(spec.batch_size)));
    }
    if spec.lr != dec(1, -4) || w.chance(50) {
        train.push((w.key("lr"), w.decimal(spec.lr)));
    }
    sections.push(Table { name: "train", entries: train });
    let mut loss = vec![(w.key("kind"), w.string("all"))];
    if spec.gamma != dec(1, -1) || w.chance(50) {
        loss.push((w.key("gamma"), w.decimal(spec.gamma)));
    }
    if spec.omega != dec(10, 0) || w.chance(50) {
        loss.push((w.key("omega"), w.decimal(spec.omega)));
    }
    sections.push(Table { name: "loss", entries: loss });
    w.shuffle(&mut sections);
    for table in sections {
        place(&mut w, table, &mut top, &mut below);
    }
    grid(&mut w, &spec.grid, &mut top, &mut below);
    w.shuffle(&mut top);
    w.shuffle(&mut below);
    let lead = w.pick(&["", "# a sweep\n", "\n"]);
    format!("{lead}{}{}", top.concat(), below.concat())
}

/// The `[grid]`: one quoted dotted key per axis, bare dotted keys, `[grid.SECTION]` tables,
/// or an inline table; the axes in any order; no grid and an empty one alike.
fn grid(w: &mut Writer, axes: &[Axis], top: &mut Vec<String>, below: &mut Vec<String>) {
    let mut axes: Vec<&Axis> = axes.iter().collect();
    w.shuffle(&mut axes);
    let lists: Vec<(&str, String)> = axes
        .iter()
        .map(|axis| {
            let values = axis.values.iter().map(|&v| w.val(v)).collect();
            (axis.key, w.array(values))
        })
        .collect();
    if lists.is_empty() && w.chance(50) {
        return;
    }
    if w.chance(25) {
        let mut by_section: Vec<Table> = Vec::new();
        for (key, list) in lists {
            let (section, rest) = key.split_once('.').expect("a dotted key");
            let section = ["dataset", "model", "train", "loss"].into_iter().find(|s| *s == section).expect("a section");
            let rest = w.key(rest);
            match by_section.iter_mut().find(|t| t.name == section) {
                Some(table) => table.entries.push((rest, list)),
                None => by_section.push(Table { name: section, entries: vec![(rest, list)] }),
            }
        }
        let mut text = if w.chance(50) { format!("[grid]{}", w.eol()) } else { String::new() };
        for table in by_section {
            text.push_str(&format!("[{}.{}]{}", w.key("grid"), w.key(table.name), w.eol()));
            for (k, v) in table.entries {
                text.push_str(&format!("{k}{}={}{v}{}", w.ws(), w.ws(), w.eol()));
            }
        }
        below.push(text);
        return;
    }
    // Bare dotted keys nest (`loss.gamma` is `[grid.loss] gamma`); quoted ones hold the dots.
    let bare = w.chance(30);
    let entries = lists
        .into_iter()
        .map(|(key, list)| {
            let quote = if bare { "" } else { w.pick(&["\"", "'"]) };
            (format!("{quote}{key}{quote}"), list)
        })
        .collect();
    place(w, Table { name: "grid", entries }, top, below);
}
