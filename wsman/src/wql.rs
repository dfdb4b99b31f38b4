//! The WQL that WS-Management clients of Hyper-V send: `SELECT * | props FROM Class
//! [WHERE expr]` with AND, OR, NOT, parentheses, `=`, `<>`/`!=`, `<`, `>`, `<=`, `>=`, LIKE,
//! `IS [NOT] NULL` and `__THIS ISA 'Class'` (libvirt polls jobs this way,
//! docs/facts.md#get-and-job-polling);
//! `ASSOCIATORS OF {path} [WHERE AssocClass = X ResultClass = Y Role = R ResultRole = S
//! RequiredQualifier = Q RequiredAssocQualifier = Q ClassDefsOnly KeysOnly]` and
//! `REFERENCES OF {path} [WHERE ResultClass = X Role = R RequiredQualifier = Q ClassDefsOnly
//! KeysOnly]`, the keywords of the WMI pages "ASSOCIATORS OF Statement", "REFERENCES OF
//! Statement" and "WQL (SQL for WMI)" (KEYSONLY) in MicrosoftDocs/win32 desktop-src/WmiSdk.
//!
//! Parsing only: matching instances is the caller's job, helped by [`Condition::matches`].

use std::fmt;

/// A parse error: `position` is a byte offset into the query text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WQL error at byte {position}: {message}")]
pub struct WqlError {
    /// Byte offset in the query text.
    pub position: usize,
    /// What was expected there.
    pub message: String,
}

/// A parsed query: the three statement forms WinRM clients send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `SELECT … FROM Class [WHERE …]`.
    Select {
        /// The FROM class.
        class: String,
        /// `None` for `*`.
        projection: Option<Vec<String>>,
        /// The WHERE clause; `None` selects every instance.
        filter: Option<Expr>,
    },
    /// `REFERENCES OF {path} [WHERE …]`: the association instances naming the object.
    References {
        /// Class of the source object path.
        source_class: String,
        /// Key bindings of the source object path, in order.
        source_keys: Vec<(String, String)>,
        /// `ResultClass =`: only associations of this class.
        result_class: Option<String>,
        /// `Role =`: the source plays this role.
        role: Option<String>,
        /// `KeysOnly`, `ClassDefsOnly`, `RequiredQualifier`.
        options: TraversalOptions,
    },
    /// `ASSOCIATORS OF {path} [WHERE …]`: the objects associated with it.
    Associators {
        /// Class of the source object path.
        source_class: String,
        /// Key bindings of the source object path, in order. A key-less path
        /// `{Class="v"}` gives one binding with an empty name.
        source_keys: Vec<(String, String)>,
        /// `AssocClass =`: only through associations of this class.
        assoc_class: Option<String>,
        /// `ResultClass =`: only results of this class.
        result_class: Option<String>,
        /// `Role =`: the source plays this role.
        role: Option<String>,
        /// `ResultRole =`: the result plays this role.
        result_role: Option<String>,
        /// `KeysOnly`, `ClassDefsOnly`, `RequiredQualifier`, `RequiredAssocQualifier`.
        options: TraversalOptions,
    },
}

/// The other keywords of an `ASSOCIATORS OF` / `REFERENCES OF` WHERE clause (WMI's pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraversalOptions {
    /// `KeysOnly`: the results carry only their key properties.
    pub keys_only: bool,
    /// `ClassDefsOnly`: class definitions instead of instances (exclusive with ResultClass).
    pub class_defs_only: bool,
    /// `RequiredQualifier = Q`: the results' class has qualifier Q.
    pub required_qualifier: Option<String>,
    /// `RequiredAssocQualifier = Q` (ASSOCIATORS OF only): the association class has Q.
    pub required_assoc_qualifier: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `LIKE`, with WQL's `%`, `_` and `[…]` wildcards, ignoring case.
    Like,
}

/// A WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// It does not hold.
    Not(Box<Expr>),
    /// A property compared with a literal.
    Cmp(Condition),
    /// `Prop IS NULL` (`negated`: `IS NOT NULL`).
    IsNull {
        /// The property tested.
        prop: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `__THIS ISA 'Class'`: the instance's class is Class or derives from it.
    Isa(String),
}

impl Expr {
    /// Every property name the clause mentions (`__THIS` of ISA is not one).
    pub fn props(&self) -> Vec<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.props();
                v.extend(b.props());
                v
            }
            Expr::Not(e) => e.props(),
            Expr::Cmp(c) => vec![c.prop.as_str()],
            Expr::IsNull { prop, .. } => vec![prop.as_str()],
            Expr::Isa(_) => Vec::new(),
        }
    }

    /// The value `prop` must equal for the clause to hold, when the clause says so (a
    /// conjunction with `prop = 'v'`): lets a caller look one instance up.
    pub fn required_eq(&self, prop: &str) -> Option<&str> {
        match self {
            Expr::Cmp(c) if c.op == Op::Eq && c.prop.eq_ignore_ascii_case(prop) => {
                Some(c.value.as_str())
            }
            Expr::And(a, b) => a.required_eq(prop).or_else(|| b.required_eq(prop)),
            _ => None,
        }
    }

    /// Whether an instance satisfies the clause. `value` gives a property's text (`None` for
    /// NULL); `is_a` whether the instance's class is or derives from a class. A comparison
    /// with NULL is false, as in WMI; `NOT` of it is true.
    pub fn matches(
        &self,
        value: &dyn Fn(&str) -> Option<String>,
        is_a: &dyn Fn(&str) -> bool,
    ) -> bool {
        match self {
            Expr::And(a, b) => a.matches(value, is_a) && b.matches(value, is_a),
            Expr::Or(a, b) => a.matches(value, is_a) || b.matches(value, is_a),
            Expr::Not(e) => !e.matches(value, is_a),
            Expr::Cmp(c) => value(&c.prop).is_some_and(|v| c.matches(&v)),
            Expr::IsNull { prop, negated } => value(prop).is_none() != *negated,
            Expr::Isa(class) => is_a(class),
        }
    }
}

/// How the literal was written, which decides how it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralKind {
    /// Quoted.
    String,
    /// A number.
    Integer,
    /// `TRUE` or `FALSE`.
    Bool,
}

/// `Prop op literal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The property compared.
    pub prop: String,
    /// The comparison.
    pub op: Op,
    /// The literal with quotes and escapes removed; booleans as `TRUE`/`FALSE`.
    pub value: String,
    /// How the literal was written.
    pub kind: LiteralKind,
}

impl Condition {
    /// Whether a property value (as text) satisfies the condition. Strings compare
    /// case-insensitively, as WMI does; integers numerically when both sides parse;
    /// booleans by truth value. A NULL property is the caller's case: WQL's `=` never
    /// matches NULL, and neither does `<>`.
    pub fn matches(&self, actual: &str) -> bool {
        if self.op == Op::Like {
            return like(&self.value, actual);
        }
        let ord = match self.kind {
            LiteralKind::Integer => match (parse_int(actual), parse_int(&self.value)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(caseless_cmp(actual, &self.value)),
            },
            LiteralKind::Bool => match (parse_bool(actual), parse_bool(&self.value)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            },
            LiteralKind::String => Some(caseless_cmp(actual, &self.value)),
        };
        let Some(ord) = ord else { return false };
        match self.op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Gt => ord.is_gt(),
            Op::Le => ord.is_le(),
            Op::Ge => ord.is_ge(),
            Op::Like => false,
        }
    }
}

fn caseless_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

/// WQL LIKE, case-insensitive: `%` any run, `_` one character, `[abc]`/`[a-z]` a set,
/// `[^…]` its complement.
fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Positions in the text reachable after each pattern element: linear in both lengths
    // for every pattern (no backtracking blow-up from a hostile `%%%%…`).
    let mut states = vec![false; t.len() + 1];
    states[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; t.len() + 1];
        match p[i] {
            '%' => {
                let mut on = false;
                for (k, s) in states.iter().enumerate() {
                    on |= *s;
                    next[k] = on;
                }
                i += 1;
            }
            '[' => {
                let close = p[i + 1..].iter().position(|c| *c == ']').map(|x| x + i + 1);
                let (set, negate, end) = match close {
                    Some(c) if p.get(i + 1) == Some(&'^') => (&p[i + 2..c], true, c + 1),
                    Some(c) => (&p[i + 1..c], false, c + 1),
                    // An unclosed `[` is a literal.
                    None => (&p[i..=i], false, i + 1),
                };
                for k in 0..t.len() {
                    if states[k] && in_set(set, t[k]) != negate {
                        next[k + 1] = true;
                    }
                }
                i = end;
            }
            c => {
                for k in 0..t.len() {
                    if states[k] && (c == '_' || t[k] == c) {
                        next[k + 1] = true;
                    }
                }
                i += 1;
            }
        }
        states = next;
    }
    states[t.len()]
}

fn in_set(set: &[char], c: char) -> bool {
    let mut k = 0;
    while k < set.len() {
        if k + 2 < set.len() && set[k + 1] == '-' {
            if set[k] <= c && c <= set[k + 2] {
                return true;
            }
            k += 3;
        } else {
            if set[k] == c {
                return true;
            }
            k += 1;
        }
    }
    false
}

fn parse_int(s: &str) -> Option<i128> {
    s.trim().parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

impl Query {
    /// Parses one statement; anything else (or trailing text) is an error at its byte offset.
    pub fn parse(text: &str) -> Result<Query, WqlError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: text.len(),
        };
        let q = if p.keyword("SELECT") {
            p.select()?
        } else if p.keyword("ASSOCIATORS") {
            p.associators()?
        } else if p.keyword("REFERENCES") {
            p.references()?
        } else {
            return Err(p.error("expected SELECT, ASSOCIATORS OF or REFERENCES OF"));
        };
        match p.peek() {
            None => Ok(q),
            Some(_) => Err(p.error("unexpected text after the end of the query")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Star,
    Comma,
    Dot,
    Eq,
    Ne,
    /// `<`, `>`, `<=`, `>=`: lexed so that the error can name them.
    Cmp(&'static str),
    LBrace,
    RBrace,
    LParen,
    RParen,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Num(n) => write!(f, "`{n}`"),
            Tok::Star => f.write_str("`*`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Dot => f.write_str("`.`"),
            Tok::Eq => f.write_str("`=`"),
            Tok::Ne => f.write_str("`<>`"),
            Tok::Cmp(s) => write!(f, "`{s}`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, WqlError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '*' => Tok::Star,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '=' => Tok::Eq,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '!' if it.next_if(|&(_, c)| c == '=').is_some() => Tok::Ne,
            '<' if it.next_if(|&(_, c)| c == '>').is_some() => Tok::Ne,
            '<' if it.next_if(|&(_, c)| c == '=').is_some() => Tok::Cmp("<="),
            '>' if it.next_if(|&(_, c)| c == '=').is_some() => Tok::Cmp(">="),
            '<' => Tok::Cmp("<"),
            '>' => Tok::Cmp(">"),
            '\'' | '"' => {
                let mut s = String::new();
                let mut closed = false;
                while let Some((_, ch)) = it.next() {
                    if ch == c {
                        // A doubled quote stands for one quote.
                        if it.next_if(|&(_, n)| n == c).is_some() {
                            s.push(c);
                            continue;
                        }
                        closed = true;
                        break;
                    }
                    if ch == '\\' {
                        // WMI's escape: `\\` is a backslash, `\'` a quote.
                        match it.next() {
                            Some((_, e)) => s.push(e),
                            None => break,
                        }
                        continue;
                    }
                    s.push(ch);
                }
                if !closed {
                    return Err(WqlError {
                        position: i,
                        message: "unterminated string literal".to_owned(),
                    });
                }
                Tok::Str(s)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut s = String::from(c);
                while let Some((_, d)) = it.next_if(|&(_, d)| d.is_ascii_digit()) {
                    s.push(d);
                }
                if s.len() == 1 && !c.is_ascii_digit() {
                    return Err(WqlError {
                        position: i,
                        message: format!("`{c}` is not followed by a number"),
                    });
                }
                Tok::Num(s)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some((_, d)) = it.next_if(|&(_, d)| d.is_ascii_alphanumeric() || d == '_')
                {
                    s.push(d);
                }
                Tok::Ident(s)
            }
            other => {
                return Err(WqlError {
                    position: i,
                    message: format!("unexpected character `{other}`"),
                });
            }
        };
        out.push((i, tok));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(p, _)| *p)
    }

    fn error(&self, message: impl Into<String>) -> WqlError {
        let mut message = message.into();
        match self.peek() {
            Some(t) => message.push_str(&format!(", found {t}")),
            None => message.push_str(", found the end of the query"),
        }
        WqlError {
            position: self.position(),
            message,
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    /// Consumes the keyword if it is next.
    fn keyword(&mut self, kw: &str) -> bool {
        let found = self.is_keyword(kw);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), WqlError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.error(format!("expected {kw}")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, WqlError> {
        match self.peek() {
            Some(Tok::Ident(s)) if !is_reserved(s) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn select(&mut self) -> Result<Query, WqlError> {
        let projection = if self.eat(&Tok::Star) {
            None
        } else {
            let mut props = vec![self.ident("`*` or a property name")?];
            while self.eat(&Tok::Comma) {
                props.push(self.ident("a property name")?);
            }
            Some(props)
        };
        self.expect_keyword("FROM")?;
        let class = self.ident("a class name")?;
        let filter = if self.keyword("WHERE") {
            Some(self.or_expr(0)?)
        } else {
            None
        };
        Ok(Query::Select {
            class,
            projection,
            filter,
        })
    }

    /// `depth` bounds nesting, so a hostile `((((…` cannot exhaust the stack.
    fn or_expr(&mut self, depth: usize) -> Result<Expr, WqlError> {
        let mut e = self.and_expr(depth)?;
        while self.keyword("OR") {
            e = Expr::Or(Box::new(e), Box::new(self.and_expr(depth)?));
        }
        Ok(e)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, WqlError> {
        let mut e = self.unary(depth)?;
        while self.keyword("AND") {
            e = Expr::And(Box::new(e), Box::new(self.unary(depth)?));
        }
        Ok(e)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, WqlError> {
        if depth > 64 {
            return Err(self.error("the condition is nested too deeply"));
        }
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat(&Tok::LParen) {
            let e = self.or_expr(depth + 1)?;
            if !self.eat(&Tok::RParen) {
                return Err(self.error("expected `)`"));
            }
            return Ok(e);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, WqlError> {
        let prop = self.ident("a property name")?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull { prop, negated });
        }
        if self.keyword("ISA") {
            let class = match self.peek() {
                Some(Tok::Str(s) | Tok::Ident(s)) => s.clone(),
                _ => return Err(self.error("expected a class name after ISA")),
            };
            if !prop.eq_ignore_ascii_case("__THIS") {
                return Err(self.error("ISA is supported on __THIS only"));
            }
            self.pos += 1;
            return Ok(Expr::Isa(class));
        }
        let op = match self.peek() {
            Some(Tok::Eq) => Op::Eq,
            Some(Tok::Ne) => Op::Ne,
            Some(Tok::Cmp("<")) => Op::Lt,
            Some(Tok::Cmp(">")) => Op::Gt,
            Some(Tok::Cmp("<=")) => Op::Le,
            Some(Tok::Cmp(_)) => Op::Ge,
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("LIKE") => Op::Like,
            _ => return Err(self.error("expected =, <>, !=, <, >, <=, >=, LIKE, IS or ISA")),
        };
        self.pos += 1;
        let (value, kind) = match self.peek() {
            Some(Tok::Str(s)) => (s.clone(), LiteralKind::String),
            Some(Tok::Num(n)) if op != Op::Like => (n.clone(), LiteralKind::Integer),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("TRUE") && op != Op::Like => {
                ("TRUE".to_owned(), LiteralKind::Bool)
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("FALSE") && op != Op::Like => {
                ("FALSE".to_owned(), LiteralKind::Bool)
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("NULL") => {
                return Err(self.error("compare with NULL using IS NULL or IS NOT NULL"));
            }
            _ if op == Op::Like => return Err(self.error("expected a quoted pattern")),
            _ => return Err(self.error("expected a quoted string, an integer, TRUE or FALSE")),
        };
        self.pos += 1;
        Ok(Expr::Cmp(Condition {
            prop,
            op,
            value,
            kind,
        }))
    }

    /// `{Class.Key='v',…}` or `{Class='v'}`.
    fn object_path(&mut self) -> Result<(String, Vec<(String, String)>), WqlError> {
        self.expect_keyword("OF")?;
        if !self.eat(&Tok::LBrace) {
            return Err(self.error("expected `{` and an object path"));
        }
        let source_class = self.ident("a class name")?;
        let mut source_keys = Vec::new();
        if self.eat(&Tok::Dot) {
            loop {
                let key = self.ident("a key property name")?;
                if !self.eat(&Tok::Eq) {
                    return Err(self.error("expected `=`"));
                }
                source_keys.push((key, self.key_value()?));
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        } else if self.eat(&Tok::Eq) {
            source_keys.push((String::new(), self.key_value()?));
        }
        if !self.eat(&Tok::RBrace) {
            return Err(self.error("expected `}`"));
        }
        Ok((source_class, source_keys))
    }

    fn references(&mut self) -> Result<Query, WqlError> {
        let (source_class, source_keys) = self.object_path()?;
        let (mut result_class, mut role) = (None, None);
        let mut options = TraversalOptions::default();
        if self.keyword("WHERE") {
            while let Some(Tok::Ident(kw)) = self.peek() {
                let kw = kw.to_ascii_lowercase();
                let at = self.position();
                if self.traversal_flag(&kw, &mut options)? {
                    continue;
                }
                let slot = match kw.as_str() {
                    "resultclass" => &mut result_class,
                    "role" => &mut role,
                    "requiredqualifier" => &mut options.required_qualifier,
                    _ => {
                        return Err(self.error(
                            "only ResultClass, Role, RequiredQualifier, ClassDefsOnly and KeysOnly are supported",
                        ));
                    }
                };
                self.pos += 1;
                self.keyword_value(slot, at)?;
            }
        }
        Self::exclusive(&options, &result_class)?;
        Ok(Query::References {
            source_class,
            source_keys,
            result_class,
            role,
            options,
        })
    }

    fn associators(&mut self) -> Result<Query, WqlError> {
        let (source_class, source_keys) = self.object_path()?;
        let (mut assoc_class, mut result_class, mut role, mut result_role) =
            (None, None, None, None);
        let mut options = TraversalOptions::default();
        if self.keyword("WHERE") {
            while let Some(Tok::Ident(kw)) = self.peek() {
                let kw = kw.to_ascii_lowercase();
                let at = self.position();
                if self.traversal_flag(&kw, &mut options)? {
                    continue;
                }
                let slot = match kw.as_str() {
                    "assocclass" => &mut assoc_class,
                    "resultclass" => &mut result_class,
                    "role" => &mut role,
                    "resultrole" => &mut result_role,
                    "requiredqualifier" => &mut options.required_qualifier,
                    "requiredassocqualifier" => &mut options.required_assoc_qualifier,
                    _ => {
                        return Err(self.error(
                            "only AssocClass, ResultClass, Role, ResultRole, RequiredQualifier, RequiredAssocQualifier, ClassDefsOnly and KeysOnly are supported",
                        ));
                    }
                };
                self.pos += 1;
                self.keyword_value(slot, at)?;
            }
        }
        Self::exclusive(&options, &result_class)?;
        Ok(Query::Associators {
            source_class,
            source_keys,
            assoc_class,
            result_class,
            role,
            result_role,
            options,
        })
    }

    /// The bare keywords `ClassDefsOnly` and `KeysOnly` (no `= value`); `true` if `kw` was one.
    fn traversal_flag(
        &mut self,
        kw: &str,
        options: &mut TraversalOptions,
    ) -> Result<bool, WqlError> {
        let flag = match kw {
            "classdefsonly" => &mut options.class_defs_only,
            "keysonly" => &mut options.keys_only,
            _ => return Ok(false),
        };
        if *flag {
            return Err(self.error("the same keyword appears twice"));
        }
        *flag = true;
        self.pos += 1;
        Ok(true)
    }

    /// `= value` after a keyword (the keyword itself at byte `at`), stored once in `slot`.
    /// Only `=` is valid between a keyword and its value (the pages' notes).
    fn keyword_value(&mut self, slot: &mut Option<String>, at: usize) -> Result<(), WqlError> {
        if !self.eat(&Tok::Eq) {
            return Err(self.error("expected `=`"));
        }
        let value = match self.peek() {
            Some(Tok::Ident(s) | Tok::Str(s)) => s.clone(),
            _ => return Err(self.error("expected a class, role or qualifier name")),
        };
        self.pos += 1;
        if slot.replace(value).is_some() {
            return Err(WqlError {
                position: at,
                message: "the same keyword appears twice".to_owned(),
            });
        }
        Ok(())
    }

    /// "The ClassDefsOnly and ResultClass keywords are mutually exclusive. Using them together
    /// causes an invalid query error." (both pages)
    fn exclusive(
        options: &TraversalOptions,
        result_class: &Option<String>,
    ) -> Result<(), WqlError> {
        if options.class_defs_only && result_class.is_some() {
            return Err(WqlError {
                position: 0,
                message: "ClassDefsOnly and ResultClass are mutually exclusive".to_owned(),
            });
        }
        Ok(())
    }

    fn key_value(&mut self) -> Result<String, WqlError> {
        match self.peek() {
            Some(Tok::Str(s) | Tok::Num(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("expected a quoted key value or an integer")),
        }
    }
}

/// Words that cannot be class or property names in the positions we parse.
fn is_reserved(s: &str) -> bool {
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "ASSOCIATORS",
        "REFERENCES",
        "OF",
        "IS",
        "ISA",
        "LIKE",
    ]
    .iter()
    .any(|k| s.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        match Query::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn cond(prop: &str, op: Op, value: &str, kind: LiteralKind) -> Condition {
        Condition {
            prop: prop.into(),
            op,
            value: value.into(),
            kind,
        }
    }

    #[test]
    fn libvirt_job_poll() {
        assert_eq!(
            q("SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '9C7D3E22-5B1A'"),
            Query::Select {
                class: "Msvm_ConcreteJob".into(),
                projection: None,
                filter: Some(Expr::Cmp(cond(
                    "InstanceID",
                    Op::Eq,
                    "9C7D3E22-5B1A",
                    LiteralKind::String
                ))),
            }
        );
    }

    /// Evaluates a WHERE clause against one row of `(property, value)`; class `Msvm_X`.
    fn eval(clause: &str, row: &[(&str, Option<&str>)]) -> bool {
        let Query::Select {
            filter: Some(f), ..
        } = q(&format!("SELECT * FROM Msvm_X WHERE {clause}"))
        else {
            panic!("{clause}: no filter")
        };
        let value = |p: &str| {
            row.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(p))
                .and_then(|(_, v)| v.map(str::to_string))
        };
        f.matches(&value, &|c: &str| {
            c.eq_ignore_ascii_case("Msvm_X") || c.eq_ignore_ascii_case("CIM_X")
        })
    }

    #[test]
    fn where_clauses_as_clients_write_them() {
        let row: &[(&str, Option<&str>)] = &[
            ("Name", Some("a\"b")),
            ("X", Some("it's")),
            ("Y", Some("c:\\d'e")),
            ("N", Some("-5")),
            ("B", Some("TRUE")),
            ("S", Some("7")),
            ("E", Some("vm-ONE")),
            ("Z", None),
        ];
        let cases: &[(&str, bool)] = &[
            (
                r#"Name="a""b" and X <> 'its' AND Y = 'c:\\d\'e' and N = -5 and B = true"#,
                true,
            ),
            ("N = -5 OR B = false", true),
            ("N = -4 OR B = false", false),
            ("NOT (N = -4) AND (S > 6 OR S < 2)", true),
            ("S >= 7 AND S <= 7 AND S != 8", true),
            ("S < 10", true),
            ("S > 10", false),
            ("E LIKE 'VM-%'", true),
            ("E LIKE 'vm-_NE'", true),
            ("E LIKE '[uv]m-one'", true),
            ("E LIKE '[^v]%'", false),
            ("E LIKE 'vm'", false),
            ("Z IS NULL AND E IS NOT NULL", true),
            ("Z = 'x'", false),
            ("Z <> 'x'", false),
            ("NOT Z = 'x'", true),
            ("__THIS ISA 'CIM_X'", true),
            ("__THIS ISA 'CIM_Other'", false),
            ("n = -5 and not not b = TRUE", true),
        ];
        for (clause, expected) in cases {
            assert_eq!(eval(clause, row), *expected, "{clause}");
        }
        assert!(matches!(q("SELECT * FROM C"), Query::Select { filter, .. } if filter.is_none()));
        assert!(matches!(
            q("SELECT Name, ElementName FROM C"),
            Query::Select { projection: Some(p), .. } if p == ["Name", "ElementName"]
        ));
    }

    #[test]
    fn references_of() {
        assert_eq!(
            q(
                "REFERENCES OF {Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"X\"} WHERE ResultClass = Msvm_ElementSettingData Role = ManagedElement"
            ),
            Query::References {
                source_class: "Msvm_ComputerSystem".into(),
                source_keys: vec![
                    ("CreationClassName".into(), "Msvm_ComputerSystem".into()),
                    ("Name".into(), "X".into()),
                ],
                result_class: Some("Msvm_ElementSettingData".into()),
                role: Some("ManagedElement".into()),
                options: TraversalOptions::default(),
            }
        );
    }

    #[test]
    fn associators_libvirt_style() {
        let parsed = q(
            "ASSOCIATORS OF {Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='8FF5E6F3'} WHERE AssocClass = Msvm_SystemDevice ResultClass = Msvm_VirtualSystemSettingData",
        );
        assert_eq!(
            parsed,
            Query::Associators {
                source_class: "Msvm_ComputerSystem".into(),
                source_keys: vec![
                    ("CreationClassName".into(), "Msvm_ComputerSystem".into()),
                    ("Name".into(), "8FF5E6F3".into()),
                ],
                assoc_class: Some("Msvm_SystemDevice".into()),
                result_class: Some("Msvm_VirtualSystemSettingData".into()),
                role: None,
                result_role: None,
                options: TraversalOptions::default(),
            }
        );
        let keyless = q(
            r#"associators of {Win32_Directory="C:\\"} where ResultClass=CIM_DataFile ResultRole = PartComponent"#,
        );
        assert!(
            matches!(keyless, Query::Associators { ref source_keys, ref result_role, .. }
            if source_keys == &[(String::new(), "C:\\".to_string())] && result_role.as_deref() == Some("PartComponent"))
        );
        assert!(matches!(
            q("ASSOCIATORS OF {C.K=1}"),
            Query::Associators {
                assoc_class: None,
                ..
            }
        ));
    }

    /// The WHERE keywords of the WMI pages, in any order, bare flags between `=` pairs.
    #[test]
    fn traversal_keywords() {
        let parsed = q(
            "ASSOCIATORS OF {C.K=1} WHERE KeysOnly requiredQualifier = Dynamic ResultRole = Dependent RequiredAssocQualifier = Aggregation",
        );
        assert!(
            matches!(parsed, Query::Associators { ref result_role, ref options, .. }
            if result_role.as_deref() == Some("Dependent")
                && options == &TraversalOptions {
                    keys_only: true,
                    class_defs_only: false,
                    required_qualifier: Some("Dynamic".into()),
                    required_assoc_qualifier: Some("Aggregation".into()),
                })
        );
        assert!(matches!(
            q("REFERENCES OF {C.K=1} WHERE ClassDefsOnly RequiredQualifier = Association"),
            Query::References { ref options, .. }
                if options.class_defs_only && options.required_qualifier.as_deref() == Some("Association")
        ));
    }

    #[test]
    fn errors_have_positions() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("DELETE FROM X", 0),
            ("SELECT FROM X", 7),
            ("SELECT * X", 9),
            ("SELECT * FROM", 13),
            ("SELECT * FROM X WHERE", 21),
            ("SELECT * FROM X WHERE A = 'x", 26),
            ("SELECT * FROM X WHERE A = 1 OR", 30),
            ("SELECT * FROM X WHERE (A = 1", 28),
            ("SELECT * FROM X WHERE A LIKE 5", 29),
            ("SELECT * FROM X WHERE A IS 5", 27),
            ("SELECT * FROM X WHERE A ISA 'C'", 28),
            ("REFERENCES OF {C.K=1} WHERE AssocClass = A", 28),
            ("SELECT * FROM X WHERE A = B", 26),
            ("SELECT * FROM X WHERE A = NULL", 26),
            ("SELECT * FROM X extra", 16),
            ("SELECT * FROM X WHERE A = 1 ;", 28),
            ("SELECT * FROM X WHERE A = -", 26),
            ("ASSOCIATORS {C.K=1}", 12),
            ("ASSOCIATORS OF {C.K=1", 21),
            ("ASSOCIATORS OF {C.K=1} WHERE Colour = A", 29),
            ("ASSOCIATORS OF {C.K=1} WHERE KeysOnly KeysOnly", 38),
            (
                "ASSOCIATORS OF {C.K=1} WHERE RequiredQualifier <> Dynamic",
                47,
            ),
            (
                "ASSOCIATORS OF {C.K=1} WHERE ClassDefsOnly ResultClass = A",
                0,
            ),
            ("REFERENCES OF {C.K=1} WHERE RequiredAssocQualifier = A", 28),
            (
                "ASSOCIATORS OF {C.K=1} WHERE AssocClass = A AssocClass = B",
                44,
            ),
            ("ASSOCIATORS OF {C.K=1} WHERE AssocClass =", 41),
            ("SELECT * FROM X WHERE é = 1", 22),
        ];
        for (text, position) in cases {
            match Query::parse(text) {
                Ok(q) => panic!("{text:?} parsed as {q:?}"),
                Err(e) => assert_eq!(e.position, *position, "{text:?}: {e}"),
            }
        }
        let deep = format!("SELECT * FROM X WHERE {}A = 1", "(".repeat(10_000));
        assert!(Query::parse(&deep).is_err());
    }

    #[test]
    fn condition_matching() {
        let s = cond("Name", Op::Eq, "vm-ONE", LiteralKind::String);
        assert!(s.matches("VM-one"));
        assert!(!s.matches("vm-two"));
        let u = cond("Name", Op::Eq, "ÉTÉ", LiteralKind::String);
        assert!(u.matches("été"));
        let n = cond("JobState", Op::Ne, "7", LiteralKind::Integer);
        assert!(n.matches("4"));
        assert!(!n.matches("07"));
        let b = cond("Enabled", Op::Eq, "TRUE", LiteralKind::Bool);
        assert!(b.matches("true") && !b.matches("false") && !b.matches("maybe"));
        let l = cond("P", Op::Like, &"%".repeat(200), LiteralKind::String);
        assert!(l.matches(&"a".repeat(5000)));
    }
}
