//! Falco's condition language: text -> syntax tree, with byte ranges for every error.
//!
//! ```text
//! expr   := and ("or" and)*
//! and    := unary ("and" unary)*
//! unary  := "not" unary | "(" expr ")" | check | macro
//! check  := lhs "exists" | lhs binop operand | lhs listop list
//! lhs    := field | transformer "(" lhs ")"
//! field  := name ["[" arg "]"]
//! list   := "(" [item ("," item)*] ")" | name-of-a-list
//! ```

use std::ops::Range;

/// Nesting deeper than this is refused rather than risking the parser's stack.
const MAX_DEPTH: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Macro { name: String, at: Range<usize> },
    Check(Check),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub lhs: FieldExpr,
    pub op: Op,
    pub rhs: Operand,
    /// The whole check, for messages about it.
    pub at: Range<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transformer {
    ToLower,
    ToUpper,
    B64,
    Basename,
    Len,
}

impl Transformer {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "b64" => Self::B64,
            "basename" => Self::Basename,
            "len" => Self::Len,
            _ => return None,
        })
    }
}

/// A field reference, with the transformers applied to it, innermost last.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldExpr {
    pub transformers: Vec<Transformer>,
    pub name: String,
    pub arg: Option<String>,
    /// Where the field name (and its argument) is.
    pub at: Range<usize>,
}

impl FieldExpr {
    /// The field as written without transformers: `proc.aname[2]`.
    pub fn display_name(&self) -> String {
        match &self.arg {
            Some(a) => format!("{}[{a}]", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    In,
    Intersects,
    PMatch,
    Exists,
    Regex,
}

impl Op {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "contains" => Self::Contains,
            "icontains" => Self::IContains,
            "bcontains" => Self::BContains,
            "startswith" => Self::StartsWith,
            "bstartswith" => Self::BStartsWith,
            "endswith" => Self::EndsWith,
            "glob" => Self::Glob,
            "iglob" => Self::IGlob,
            "in" => Self::In,
            "intersects" => Self::Intersects,
            "pmatch" => Self::PMatch,
            "exists" => Self::Exists,
            "regex" => Self::Regex,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Contains => "contains",
            Self::IContains => "icontains",
            Self::BContains => "bcontains",
            Self::StartsWith => "startswith",
            Self::BStartsWith => "bstartswith",
            Self::EndsWith => "endswith",
            Self::Glob => "glob",
            Self::IGlob => "iglob",
            Self::In => "in",
            Self::Intersects => "intersects",
            Self::PMatch => "pmatch",
            Self::Exists => "exists",
            Self::Regex => "regex",
        }
    }

    /// Parses an operator as exceptions' `comps` write it.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" | "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            w => return Self::from_word(w),
        })
    }

    pub fn takes_list(self) -> bool {
        matches!(self, Self::In | Self::Intersects | Self::PMatch)
    }
}

/// One literal as written: quoted literals are never list names.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub text: String,
    pub quoted: bool,
    pub at: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    None,
    Value(Literal),
    /// `val(field)`: compare against another field of the same event.
    Field(FieldExpr),
    List(Vec<Literal>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub at: Range<usize>,
    pub message: String,
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

const OPERATORS_HINT: &str =
    "an operator (=, !=, <, <=, >, >=, contains, startswith, endswith, in, pmatch, glob, regex, exists, ...)";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

fn is_bare_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | ',' | '"' | '\'')
}

pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { s: text, pos: 0, depth: 0 };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos < p.s.len() {
        let (at, found) = p.peek_token();
        return Err(ParseError {
            at,
            message: format!("expected `and`, `or` or the end of the condition, found {found}"),
        });
    }
    Ok(e)
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn err<T>(&self, at: Range<usize>, message: String) -> Result<T, ParseError> {
        Err(ParseError { at, message })
    }

    /// The next token's range and a description of it, for "found ..." in messages.
    fn peek_token(&self) -> (Range<usize>, String) {
        let r = self.rest();
        match r.chars().next() {
            None => (self.pos..self.pos, "the end of the condition".to_owned()),
            Some(c) if !is_bare_char(c) => (self.pos..self.pos + c.len_utf8(), format!("`{c}`")),
            Some(_) => {
                let len = r.find(|c: char| !is_bare_char(c)).unwrap_or(r.len());
                (self.pos..self.pos + len, format!("`{}`", &r[..len]))
            }
        }
    }

    /// Consumes `word` when it is the next whole word.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with(word) && !r[word.len()..].starts_with(is_name_char) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn name(&mut self) -> Option<(String, Range<usize>)> {
        self.skip_ws();
        let r = self.rest();
        let len = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        if len == 0 {
            return None;
        }
        let start = self.pos;
        self.pos += len;
        Some((r[..len].to_owned(), start..self.pos))
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.pos..self.pos + 1;
            return self.err(at, format!("conditions nest deeper than {MAX_DEPTH} levels"));
        }
        let mut terms = vec![self.and()?];
        while self.keyword("or") {
            terms.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if terms.len() == 1 { terms.pop().expect("one term") } else { Expr::Or(terms) })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.unary()?];
        while self.keyword("and") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.pop().expect("one term") } else { Expr::And(terms) })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("not") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                let at = self.pos..self.pos + 1;
                return self.err(at, format!("conditions nest deeper than {MAX_DEPTH} levels"));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.punct('(') {
            let open = self.pos - 1;
            let e = self.expr()?;
            if !self.punct(')') {
                let (at, found) = self.peek_token();
                let at = if at.is_empty() { open..open + 1 } else { at };
                return self.err(at, format!("expected `)` to close the `(`, found {found}"));
            }
            return Ok(e);
        }
        self.check_or_macro()
    }

    fn check_or_macro(&mut self) -> Result<Expr, ParseError> {
        let start = {
            self.skip_ws();
            self.pos
        };
        let Some((name, name_at)) = self.name() else {
            let (at, found) = self.peek_token();
            return self.err(at, format!("expected a field, a macro, `not` or `(`, found {found}"));
        };
        if matches!(name.as_str(), "and" | "or") {
            return self.err(name_at, format!("expected a field, a macro, `not` or `(` before `{name}`"));
        }
        let lhs = if self.rest().starts_with('(') {
            self.transformed(name, name_at)?
        } else {
            let arg = self.field_arg()?;
            let arg_given = arg.is_some();
            let at = name_at.start..self.pos;
            let lhs = FieldExpr { transformers: Vec::new(), name, arg, at };
            if !arg_given && !self.at_operator() {
                return Ok(Expr::Macro { name: lhs.name, at: lhs.at });
            }
            lhs
        };
        let op = self.operator(&lhs)?;
        let rhs = match op {
            Op::Exists => Operand::None,
            op if op.takes_list() => self.list()?,
            _ => self.operand()?,
        };
        Ok(Expr::Check(Check { lhs, op, rhs, at: start..self.pos }))
    }

    /// `tolower(field)`, nested as deep as written.
    fn transformed(&mut self, name: String, name_at: Range<usize>) -> Result<FieldExpr, ParseError> {
        let Some(t) = Transformer::from_name(&name) else {
            return self.err(
                name_at,
                format!("unknown transformer `{name}` (expected tolower, toupper, b64, basename or len)"),
            );
        };
        self.pos += 1; // (
        let inner = match self.name() {
            Some((n, at)) if self.rest().starts_with('(') => self.transformed(n, at)?,
            Some((n, at)) => {
                let arg = self.field_arg()?;
                FieldExpr { transformers: Vec::new(), name: n, arg, at: at.start..self.pos }
            }
            None => {
                let (at, found) = self.peek_token();
                return self.err(at, format!("expected a field inside `{name}(`, found {found}"));
            }
        };
        if !self.punct(')') {
            let (at, found) = self.peek_token();
            return self.err(at, format!("expected `)` to close `{name}(`, found {found}"));
        }
        let mut out = inner;
        out.transformers.insert(0, t);
        Ok(out)
    }

    fn field_arg(&mut self) -> Result<Option<String>, ParseError> {
        if !self.rest().starts_with('[') {
            return Ok(None);
        }
        let open = self.pos;
        match self.rest()[1..].find(']') {
            Some(end) => {
                let arg = self.rest()[1..1 + end].to_owned();
                self.pos += end + 2;
                Ok(Some(arg))
            }
            None => self.err(open..open + 1, "expected `]` to close the field argument".to_owned()),
        }
    }

    fn at_operator(&mut self) -> bool {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with(['=', '<', '>']) || r.starts_with("!=") {
            return true;
        }
        let len = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        Op::from_word(&r[..len]).is_some()
    }

    fn operator(&mut self, lhs: &FieldExpr) -> Result<Op, ParseError> {
        self.skip_ws();
        let r = self.rest();
        for (sym, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if r.starts_with(sym) {
                self.pos += sym.len();
                return Ok(op);
            }
        }
        let len = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        if let Some(op) = Op::from_word(&r[..len]) {
            self.pos += len;
            return Ok(op);
        }
        let (at, found) = self.peek_token();
        self.err(at, format!("expected {OPERATORS_HINT} after `{}`, found {found}", lhs.display_name()))
    }

    fn quoted(&mut self) -> Result<Option<Literal>, ParseError> {
        self.skip_ws();
        let Some(q) = self.rest().chars().next().filter(|c| matches!(c, '"' | '\'')) else {
            return Ok(None);
        };
        let start = self.pos;
        let mut text = String::new();
        let mut chars = self.rest()[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    // Only the quote and the backslash are escapes; others stay, for regexes.
                    Some((_, n)) if n == q || n == '\\' => text.push(n),
                    Some((_, n)) => {
                        text.push('\\');
                        text.push(n);
                    }
                    None => text.push('\\'),
                },
                c if c == q => {
                    self.pos = start + 1 + i + 1;
                    return Ok(Some(Literal { text, quoted: true, at: start..self.pos }));
                }
                c => text.push(c),
            }
        }
        self.err(start..start + 1, format!("expected a closing {q} for this string"))
    }

    fn bare(&mut self) -> Option<Literal> {
        self.skip_ws();
        let r = self.rest();
        let len = r.find(|c: char| !is_bare_char(c)).unwrap_or(r.len());
        if len == 0 {
            return None;
        }
        let start = self.pos;
        self.pos += len;
        Some(Literal { text: r[..len].to_owned(), quoted: false, at: start..self.pos })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        if let Some(l) = self.quoted()? {
            return Ok(Operand::Value(l));
        }
        if self.rest().starts_with("val(") {
            self.pos += 4;
            let Some((name, at)) = self.name() else {
                let (at, found) = self.peek_token();
                return self.err(at, format!("expected a field inside `val(`, found {found}"));
            };
            let arg = self.field_arg()?;
            let field = FieldExpr { transformers: Vec::new(), name, arg, at: at.start..self.pos };
            if !self.punct(')') {
                let (at, found) = self.peek_token();
                return self.err(at, format!("expected `)` to close `val(`, found {found}"));
            }
            return Ok(Operand::Field(field));
        }
        match self.bare() {
            Some(l) => Ok(Operand::Value(l)),
            None => {
                let (at, found) = self.peek_token();
                self.err(at, format!("expected a value, found {found}"))
            }
        }
    }

    fn list(&mut self) -> Result<Operand, ParseError> {
        if !self.punct('(') {
            // `in list_name` without parentheses: one item, resolved like any list item.
            return match self.bare() {
                Some(l) => Ok(Operand::List(vec![l])),
                None => {
                    let (at, found) = self.peek_token();
                    self.err(at, format!("expected `(` and a list of values, found {found}"))
                }
            };
        }
        let open = self.pos - 1;
        let mut items = Vec::new();
        if self.punct(')') {
            return Ok(Operand::List(items));
        }
        loop {
            let item = match self.quoted()? {
                Some(l) => l,
                None => match self.bare() {
                    Some(l) => l,
                    None => {
                        let (at, found) = self.peek_token();
                        return self.err(at, format!("expected a list item, found {found}"));
                    }
                },
            };
            items.push(item);
            if self.punct(',') {
                continue;
            }
            if self.punct(')') {
                return Ok(Operand::List(items));
            }
            let (at, found) = self.peek_token();
            let at = if at.is_empty() { open..open + 1 } else { at };
            return self.err(at, format!("expected `,` or `)` in the list, found {found}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: &Expr) -> &Check {
        match e {
            Expr::Check(c) => c,
            other => panic!("not a check: {other:?}"),
        }
    }

    #[test]
    fn precedence_and_grouping() {
        let e = parse("a or b and not c").unwrap();
        let Expr::Or(terms) = e else { panic!() };
        assert!(matches!(&terms[0], Expr::Macro { name, .. } if name == "a"));
        let Expr::And(inner) = &terms[1] else { panic!() };
        assert!(matches!(&inner[1], Expr::Not(_)));
        let e = parse("(a or b) and c").unwrap();
        assert!(matches!(e, Expr::And(_)));
    }

    #[test]
    fn every_operator_parses() {
        for op in [
            "=",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "contains",
            "icontains",
            "bcontains",
            "startswith",
            "bstartswith",
            "endswith",
            "glob",
            "iglob",
            "regex",
        ] {
            let e = parse(&format!("proc.name {op} x")).unwrap();
            assert_eq!(Op::parse(op).unwrap(), check(&e).op, "{op}");
        }
        for op in ["in", "intersects", "pmatch"] {
            let e = parse(&format!("fd.name {op} (a, 'b c', \"d\")")).unwrap();
            let Operand::List(items) = &check(&e).rhs else { panic!() };
            assert_eq!(items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>(), ["a", "b c", "d"]);
            assert!(!items[0].quoted && items[1].quoted);
        }
        assert_eq!(check(&parse("proc.pname exists").unwrap()).op, Op::Exists);
    }

    #[test]
    fn compact_forms_and_arguments() {
        let e = parse("fd.num>=0 and proc.aname[2]=bash and evt.type in (open,openat)").unwrap();
        let Expr::And(t) = e else { panic!() };
        assert_eq!(check(&t[0]).op, Op::Ge);
        assert_eq!(check(&t[1]).lhs.arg.as_deref(), Some("2"));
        let e = parse("proc.pname in (runc:[0:PARENT], runc:[1:CHILD])").unwrap();
        let Operand::List(items) = &check(&e).rhs else { panic!() };
        assert_eq!(items[0].text, "runc:[0:PARENT]");
    }

    #[test]
    fn transformers_and_field_values() {
        let e = parse("tolower(basename(proc.exepath)) = bash").unwrap();
        let c = check(&e);
        assert_eq!(c.lhs.transformers, [Transformer::ToLower, Transformer::Basename]);
        assert_eq!(c.lhs.name, "proc.exepath");
        let e = parse("proc.name != val(proc.pname)").unwrap();
        assert!(matches!(&check(&e).rhs, Operand::Field(f) if f.name == "proc.pname"));
    }

    #[test]
    fn quoted_strings_keep_regex_escapes() {
        let e = parse(r#"proc.cmdline regex "a\d+\"b""#).unwrap();
        let Operand::Value(l) = &check(&e).rhs else { panic!() };
        assert_eq!(l.text, r#"a\d+"b"#);
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        let e = parse("proc.name = bash and (fd.name = x").unwrap_err();
        assert!(e.message.contains("expected `)`"), "{e:?}");
        let e = parse("proc.name[2] foo").unwrap_err();
        assert!(e.message.starts_with("expected an operator"), "{e:?}");
        assert_eq!(e.at, 13..16);
        let e = parse("proc.name = 'open").unwrap_err();
        assert!(e.message.contains("closing '"), "{e:?}");
        let e = parse("a and and b").unwrap_err();
        assert!(e.message.contains("before `and`"), "{e:?}");
        let e = parse("a b").unwrap_err();
        assert_eq!(e.at, 2..3);
        let e = parse("fd.name in (a b)").unwrap_err();
        assert!(e.message.contains("expected `,` or `)`"), "{e:?}");
        let e = parse("frobnicate(proc.name) = x").unwrap_err();
        assert!(e.message.contains("unknown transformer"), "{e:?}");
        let deep = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).unwrap_err().message.contains("nest deeper"));
    }
}
