//! The subset of WQL that WS-Management clients of Hyper-V send:
//! `SELECT * FROM Class [WHERE Prop = 'v' [AND …]]` (libvirt polls jobs this way,
//! wsman.md §1.2), projections, `<>`/`!=`, and libvirt's
//! `ASSOCIATORS OF {Class.Key='v',…} WHERE AssocClass = X ResultClass = Y`.
//!
//! Parsing only: matching instances is the caller's job, helped by [`Condition::matches`].

use std::fmt;

/// A parse error: `position` is a byte offset into the query text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WQL error at byte {position}: {message}")]
pub struct WqlError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Select {
        class: String,
        /// `None` for `*`.
        projection: Option<Vec<String>>,
        /// Joined by AND.
        conditions: Vec<Condition>,
    },
    Associators {
        source_class: String,
        /// Key bindings of the source object path, in order. A key-less path
        /// `{Class="v"}` gives one binding with an empty name.
        source_keys: Vec<(String, String)>,
        assoc_class: Option<String>,
        result_class: Option<String>,
        role: Option<String>,
        result_role: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
}

/// How the literal was written, which decides how it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralKind {
    String,
    Integer,
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub prop: String,
    pub op: Op,
    /// The literal with quotes and escapes removed; booleans as `TRUE`/`FALSE`.
    pub value: String,
    pub kind: LiteralKind,
}

impl Condition {
    /// Whether a property value (as text) satisfies the condition. Strings compare
    /// case-insensitively, as WMI does; integers numerically when both sides parse;
    /// booleans by truth value. A NULL property is the caller's case: WQL's `=` never
    /// matches NULL, and neither does `<>`.
    pub fn matches(&self, actual: &str) -> bool {
        let equal = match self.kind {
            LiteralKind::Integer => match (parse_int(&self.value), parse_int(actual)) {
                (Some(a), Some(b)) => a == b,
                _ => caseless_eq(&self.value, actual),
            },
            LiteralKind::Bool => match (parse_bool(&self.value), parse_bool(actual)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
            LiteralKind::String => caseless_eq(&self.value, actual),
        };
        equal == (self.op == Op::Eq)
    }
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

fn caseless_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Query {
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
        } else {
            return Err(p.error("expected SELECT or ASSOCIATORS OF"));
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
        let mut conditions = Vec::new();
        if self.keyword("WHERE") {
            conditions.push(self.condition()?);
            loop {
                if self.keyword("AND") {
                    conditions.push(self.condition()?);
                } else if self.is_keyword("OR") {
                    return Err(self.error("OR is not supported (only AND)"));
                } else {
                    break;
                }
            }
        }
        Ok(Query::Select {
            class,
            projection,
            conditions,
        })
    }

    fn condition(&mut self) -> Result<Condition, WqlError> {
        if self.is_keyword("NOT") {
            return Err(self.error("NOT is not supported"));
        }
        let prop = self.ident("a property name")?;
        let op = match self.peek() {
            Some(Tok::Eq) => Op::Eq,
            Some(Tok::Ne) => Op::Ne,
            Some(Tok::Cmp(_)) => return Err(self.error("only =, <> and != are supported")),
            Some(Tok::Ident(s))
                if s.eq_ignore_ascii_case("IS") || s.eq_ignore_ascii_case("LIKE") =>
            {
                return Err(self.error("IS and LIKE are not supported"));
            }
            _ => return Err(self.error("expected =, <> or !=")),
        };
        self.pos += 1;
        let (value, kind) = match self.peek() {
            Some(Tok::Str(s)) => (s.clone(), LiteralKind::String),
            Some(Tok::Num(n)) => (n.clone(), LiteralKind::Integer),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("TRUE") => {
                ("TRUE".to_owned(), LiteralKind::Bool)
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("FALSE") => {
                ("FALSE".to_owned(), LiteralKind::Bool)
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("NULL") => {
                return Err(self.error("comparison with NULL is not supported"));
            }
            _ => return Err(self.error("expected a quoted string, an integer, TRUE or FALSE")),
        };
        self.pos += 1;
        Ok(Condition {
            prop,
            op,
            value,
            kind,
        })
    }

    fn associators(&mut self) -> Result<Query, WqlError> {
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
        let (mut assoc_class, mut result_class, mut role, mut result_role) =
            (None, None, None, None);
        if self.keyword("WHERE") {
            while let Some(Tok::Ident(kw)) = self.peek() {
                let slot = match kw.to_ascii_lowercase().as_str() {
                    "assocclass" => &mut assoc_class,
                    "resultclass" => &mut result_class,
                    "role" => &mut role,
                    "resultrole" => &mut result_role,
                    _ => {
                        return Err(self.error(
                            "only AssocClass, ResultClass, Role and ResultRole are supported",
                        ));
                    }
                };
                let at = self.position();
                self.pos += 1;
                if !self.eat(&Tok::Eq) {
                    return Err(self.error("expected `=`"));
                }
                let value = match self.peek() {
                    Some(Tok::Ident(s) | Tok::Str(s)) => s.clone(),
                    _ => return Err(self.error("expected a class or role name")),
                };
                self.pos += 1;
                if slot.replace(value).is_some() {
                    return Err(WqlError {
                        position: at,
                        message: "the same keyword appears twice".to_owned(),
                    });
                }
            }
        }
        Ok(Query::Associators {
            source_class,
            source_keys,
            assoc_class,
            result_class,
            role,
            result_role,
        })
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
        "OF",
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
                conditions: vec![cond(
                    "InstanceID",
                    Op::Eq,
                    "9C7D3E22-5B1A",
                    LiteralKind::String
                )],
            }
        );
    }

    #[test]
    fn keywords_quotes_escapes_operators() {
        let parsed = q(
            r#"select Name, ElementName from Msvm_ComputerSystem where Name="a""b" and X <> 'it''s' AND Y != 'c:\\d\'e' and N = -5 and B = true"#,
        );
        assert_eq!(
            parsed,
            Query::Select {
                class: "Msvm_ComputerSystem".into(),
                projection: Some(vec!["Name".into(), "ElementName".into()]),
                conditions: vec![
                    cond("Name", Op::Eq, "a\"b", LiteralKind::String),
                    cond("X", Op::Ne, "it's", LiteralKind::String),
                    cond("Y", Op::Ne, "c:\\d'e", LiteralKind::String),
                    cond("N", Op::Eq, "-5", LiteralKind::Integer),
                    cond("B", Op::Eq, "TRUE", LiteralKind::Bool),
                ],
            }
        );
        assert!(
            matches!(q("SELECT * FROM C"), Query::Select { conditions, .. } if conditions.is_empty())
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
            ("SELECT * FROM X WHERE A = 1 OR B = 2", 28),
            ("SELECT * FROM X WHERE A > 1", 24),
            ("SELECT * FROM X WHERE A = B", 26),
            ("SELECT * FROM X WHERE A IS NULL", 24),
            ("SELECT * FROM X WHERE A = NULL", 26),
            ("SELECT * FROM X extra", 16),
            ("SELECT * FROM X WHERE A = 1 ;", 28),
            ("SELECT * FROM X WHERE A = -", 26),
            ("ASSOCIATORS {C.K=1}", 12),
            ("ASSOCIATORS OF {C.K=1", 21),
            ("ASSOCIATORS OF {C.K=1} WHERE ClassDefsOnly", 29),
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
        let e = Query::parse("SELECT * FROM X WHERE A = 1 OR B = 2").err();
        assert!(e.is_some_and(|e| e.message.contains("OR")));
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
    }
}
