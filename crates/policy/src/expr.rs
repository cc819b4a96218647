//! CEL expressions and message templates: compiled and checked once at
//! load, evaluated many times.
//!
//! The `cel` crate has no static type checker, so checking is done in two
//! passes. First a walk over the syntax tree resolves every variable and
//! field path (`sku.category`, `lists.blocked_customers`) against the
//! variables of the expression's scope, and compares the types of both
//! sides of `==`, `!=` and `in` where they are known; this finds typos with
//! the exact column. Then the expression is evaluated against two fully
//! populated synthetic contexts (see [`crate::vars::Synthetic`]) to find
//! type errors the walk cannot see (`line.days_since_ship < "30"`,
//! unknown functions) and results that are not true or false. Errors that
//! depend on the data (division by zero, an index out of range) are left to
//! evaluation time, where they fail the rule with an explanation.

use std::sync::Arc;

use cel::common::ast::{Expr as Node, IdedExpr, LiteralValue, operators};
use cel::{Context, Env, ExecutionError, Program, Value};

use crate::source::{Diag, Text, closest};
use crate::vars::{Frame, Needs, Scope, field_names, field_of, lookup, type_name};

/// A compiled, checked boolean expression.
#[derive(Debug)]
pub(crate) struct Expr {
    program: Program,
}

impl Expr {
    /// Evaluates to a boolean, or explains why it could not.
    pub(crate) fn eval(&self, ctx: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "it gave {} instead of true or false",
                type_name(&other)
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Where a compiled thing came from, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) rule: Option<&'a str>,
    pub(crate) field: &'a str,
    pub(crate) scope: Scope,
}

/// Compiles and checks expressions against synthetic variables.
pub(crate) struct Checker {
    env: Arc<Env>,
    /// Per scope (in [`Scope::ALL`] order): the two synthetic frames and
    /// their contexts.
    samples: Vec<(Scope, [(Frame, Context<'static, 'static>); 2])>,
    /// The variable paths used by everything compiled so far.
    needs: Needs,
}

impl Checker {
    pub(crate) fn new(env: Arc<Env>, frames: Vec<(Scope, [Frame; 2])>) -> Self {
        let samples = frames
            .into_iter()
            .map(|(scope, [low, high])| {
                let low_ctx = low.context(&env);
                let high_ctx = high.context(&env);
                (scope, [(low, low_ctx), (high, high_ctx)])
            })
            .collect();
        Self {
            env,
            samples,
            needs: Needs::default(),
        }
    }

    /// The variable paths used by everything compiled so far.
    pub(crate) fn needs(&self) -> &Needs {
        &self.needs
    }

    fn sample(&self, scope: Scope) -> Option<&[(Frame, Context<'static, 'static>); 2]> {
        self.samples
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, samples)| samples)
    }

    /// Compiles `text`, recording every problem found in `diag`.
    pub(crate) fn compile(
        &mut self,
        text: &Text,
        origin: Origin<'_>,
        diag: &mut Diag<'_>,
    ) -> Option<Expr> {
        let report = |diag: &mut Diag<'_>, char_index: usize, message: String| {
            diag.error(
                text.offset_of_char(char_index),
                origin.rule,
                Some(origin.field),
                message,
            );
        };
        if text.value.trim().is_empty() {
            report(diag, 0, "the expression is empty".into());
            return None;
        }
        let program = match self.env.compile(&text.value) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors.errors {
                    let index = char_index_of(&text.value, e.pos.0, e.pos.1);
                    let msg = e.msg.strip_prefix("Syntax error: ").unwrap_or(&e.msg);
                    report(diag, index, format!("CEL syntax error: {msg}"));
                }
                return None;
            }
        };
        let sample = self.sample(origin.scope)?;
        let mut walk = Walk {
            scope: origin.scope,
            frame: &sample[0].0,
            program: &program,
            bound: Vec::new(),
            issues: Vec::new(),
            used: Vec::new(),
        };
        walk.node(program.expression());
        let Walk { issues, used, .. } = walk;
        if !issues.is_empty() {
            for (index, message) in issues {
                report(diag, index, message);
            }
            return None;
        }
        let mut found = Vec::new();
        for (_, ctx) in sample {
            let problem = match program.execute(ctx) {
                Ok(Value::Bool(_)) => None,
                Ok(other) => Some(format!(
                    "must give true or false, but gives {}",
                    type_name(&other)
                )),
                Err(e) => type_error(&e),
            };
            if let Some(p) = problem
                && !found.contains(&p)
            {
                found.push(p);
            }
        }
        if !found.is_empty() {
            for message in found {
                report(diag, 0, message);
            }
            return None;
        }
        for path in &used {
            self.needs.record(origin.scope, path);
        }
        Some(Expr { program })
    }

    /// Parses a message template and checks its placeholders.
    pub(crate) fn template(
        &mut self,
        text: &Text,
        origin: Origin<'_>,
        diag: &mut Diag<'_>,
    ) -> Option<Template> {
        let frame = &self.samples.iter().find(|(s, _)| *s == origin.scope)?.1[0].0;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut ok = true;
        let s = text.value.as_str();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            if rest.starts_with("{{") || rest.starts_with("}}") {
                literal.push_str(&rest[..1]);
                i += 2;
            } else if rest.starts_with('{') {
                let Some(end) = rest.find('}') else {
                    diag.error(
                        text.offset_of_byte(i),
                        origin.rule,
                        Some(origin.field),
                        "a '{' opens a placeholder that is never closed (write {{ for a literal brace)",
                    );
                    ok = false;
                    break;
                };
                let inner = &rest[1..end];
                let path: Vec<String> = inner.trim().split('.').map(str::to_owned).collect();
                let valid_syntax = path.iter().all(|p| crate::file::is_identifier(p));
                let problem = if valid_syntax {
                    check_path(origin.scope, frame, &path).err()
                } else {
                    Some(format!(
                        "placeholder {{{inner}}} must name a variable, e.g. {{line.days_since_ship}}"
                    ))
                };
                if let Some(message) = problem {
                    diag.error(
                        text.offset_of_byte(i + 1),
                        origin.rule,
                        Some(origin.field),
                        message,
                    );
                    ok = false;
                } else {
                    self.needs.record(origin.scope, &path);
                }
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(path));
                i += end + 1;
            } else if rest.starts_with('}') {
                diag.error(
                    text.offset_of_byte(i),
                    origin.rule,
                    Some(origin.field),
                    "a '}' closes no placeholder (write }} for a literal brace)",
                );
                ok = false;
                i += 1;
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                literal.push(c);
                i += c.len_utf8();
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        ok.then_some(Template { parts })
    }
}

/// The 0-based character index of a 1-based (line, column) in `source`.
fn char_index_of(source: &str, line: isize, column: isize) -> usize {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let column = usize::try_from(column).unwrap_or(1).max(1);
    let before: usize = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(|l| l.chars().count())
        .sum();
    before + column - 1
}

/// The message for an evaluation error that means the expression is wrong
/// whatever the data, or `None` for one that depends on the data.
fn type_error(e: &ExecutionError) -> Option<String> {
    match e {
        ExecutionError::UndeclaredReference(name) => {
            Some(format!("unknown function or variable {:?}", name.as_str()))
        }
        ExecutionError::NoSuchOverload(o) => {
            let op = operator_name(o.function());
            Some(format!(
                "type error: {op} cannot be applied to ({})",
                o.argument_types().join(", ")
            ))
        }
        ExecutionError::NoSuchKey(_)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::UnsupportedIndex(..)
        | ExecutionError::UnsupportedKeyType(_)
        | ExecutionError::InvalidArgumentCount { .. }
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::MissingArgumentOrTarget => Some(format!("type error: {e}")),
        // Division by zero, overflow, an index out of range, a function
        // refusing its input: these depend on the facts, and are reported
        // when they happen.
        _ => None,
    }
}

fn operator_name(function: &str) -> String {
    match function {
        operators::IN => "\"in\"".into(),
        operators::INDEX => "indexing".into(),
        f if f.starts_with('_') || f.ends_with('_') => {
            format!("{:?}", f.trim_matches(|c| c == '_' || c == ':' || c == '?'))
        }
        f => format!("function {f:?}"),
    }
}

/// Resolves a dotted path against a scope's variables. The error says what
/// exists instead, so the analyst can fix the typo.
pub(crate) fn check_path(scope: Scope, frame: &Frame, path: &[String]) -> Result<(), String> {
    let Some((root, fields)) = path.split_first() else {
        return Err("empty placeholder".into());
    };
    let available = scope.variables();
    if !available.contains(&root.as_str()) {
        let elsewhere: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| s.variables().contains(&root.as_str()))
            .map(|s| s.describe())
            .collect();
        return Err(if elsewhere.is_empty() {
            let hint = closest(root, available.iter().copied())
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            format!(
                "unknown variable {root:?}{hint} (available here: {})",
                available.join(", ")
            )
        } else {
            format!(
                "variable {root:?} is not available in {} (it is in {}; available here: {})",
                scope.describe(),
                elsewhere.join(" and "),
                available.join(", ")
            )
        });
    }
    let Some(mut value) = frame.get(root) else {
        return Err(format!("variable {root:?} has no value"));
    };
    for (i, field) in fields.iter().enumerate() {
        let here = path[..=i].join(".");
        if !matches!(value, Value::Map(_)) {
            return Err(format!(
                "{here} is {} and has no field {field:?}",
                type_name(value)
            ));
        }
        match field_of(value, field) {
            Some(next) => value = next,
            None => {
                let names = field_names(value);
                let full = path[..=i + 1].join(".");
                let hint = closest(field, names.iter().map(String::as_str))
                    .map(|c| format!("; did you mean \"{here}.{c}\"?"))
                    .unwrap_or_default();
                return Err(if here == "lists" {
                    if names.is_empty() {
                        format!("unknown list {field:?} (the policy defines no [lists])")
                    } else {
                        format!(
                            "unknown list {field:?}{hint} (lists has: {})",
                            names.join(", ")
                        )
                    }
                } else {
                    format!(
                        "unknown field {full:?}{hint} ({here} has: {})",
                        names.join(", ")
                    )
                });
            }
        }
    }
    Ok(())
}

/// The syntax-tree walk of [`Checker::compile`].
struct Walk<'a> {
    scope: Scope,
    frame: &'a Frame,
    program: &'a Program,
    /// Names bound by comprehensions (`x` in `list.all(x, …)`).
    bound: Vec<String>,
    /// Problems found: character index in the expression, message.
    issues: Vec<(usize, String)>,
    /// The variable paths the expression uses.
    used: Vec<Vec<String>>,
}

impl Walk<'_> {
    fn offset(&self, id: u64) -> usize {
        self.program
            .source_info()
            .offset_for(id)
            .and_then(|(start, _)| usize::try_from(start).ok())
            .unwrap_or(0)
    }

    fn node(&mut self, e: &IdedExpr) {
        if let Some((root_id, path)) = segments(e) {
            self.path(root_id, &path);
            return;
        }
        match &e.expr {
            Node::Call(call) => {
                if let Some(target) = &call.target {
                    self.node(target);
                }
                for arg in &call.args {
                    self.node(arg);
                }
                self.compare(e.id, &call.func_name, &call.args);
            }
            Node::Comprehension(c) => {
                self.node(&c.iter_range);
                self.node(&c.accu_init);
                let before = self.bound.len();
                self.bound.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v.clone());
                }
                self.bound.push(c.accu_var.clone());
                self.node(&c.loop_cond);
                self.node(&c.loop_step);
                self.node(&c.result);
                self.bound.truncate(before);
            }
            Node::List(list) => {
                for element in &list.elements {
                    self.node(element);
                }
            }
            Node::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(entry) = &entry.expr {
                        self.node(&entry.key);
                        self.node(&entry.value);
                    }
                }
            }
            Node::Select(s) => self.node(&s.operand),
            Node::Ident(_) | Node::Literal(_) | Node::Struct(_) | Node::Unspecified => {}
        }
    }

    fn path(&mut self, root_id: u64, path: &[String]) {
        let root = path.first().map_or("", String::as_str);
        if root.starts_with('@') || self.bound.iter().any(|b| b == root) {
            return;
        }
        match check_path(self.scope, self.frame, path) {
            Ok(()) => self.used.push(path.to_vec()),
            Err(message) => {
                let at = self.offset(root_id);
                self.issues.push((at, message));
            }
        }
    }

    /// Compares the types of both sides of `==`, `!=` and `in` where both
    /// are known: CEL happily says `line.quantity == "2"` is false, which
    /// is never what the analyst meant.
    fn compare(&mut self, id: u64, function: &str, args: &[IdedExpr]) {
        let [lhs, rhs] = args else {
            return;
        };
        let (Some(l), Some(r)) = (self.static_type(lhs), self.static_type(rhs)) else {
            return;
        };
        let problem = match function {
            operators::EQUALS | operators::NOT_EQUALS if !compatible(l, r) => Some(format!(
                "compares {} with {}; they can never be equal",
                l.describe(),
                r.describe()
            )),
            operators::IN => match r {
                Kind::List(Some(element)) if !compatible(l, Kind::scalar(element)) => {
                    Some(format!(
                        "looks for {} in a list of {}",
                        l.describe(),
                        Kind::scalar(element).describe_plural()
                    ))
                }
                Kind::List(_) | Kind::Map => None,
                _ => Some(format!(
                    "\"in\" needs a list on its right, got {}",
                    r.describe()
                )),
            },
            _ => None,
        };
        if let Some(message) = problem {
            let at = self.offset(id);
            self.issues.push((at, message));
        }
    }

    fn static_type(&self, e: &IdedExpr) -> Option<Kind> {
        if let Node::Literal(lit) = &e.expr {
            return Some(match lit {
                LiteralValue::Boolean(_) => Kind::Bool,
                LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_) => {
                    Kind::Number
                }
                LiteralValue::String(_) => Kind::String,
                LiteralValue::Null | LiteralValue::Bytes(_) => return None,
            });
        }
        let (_, path) = segments(e)?;
        let root = path.first()?;
        if root.starts_with('@') || self.bound.iter().any(|b| b == root) {
            return None;
        }
        lookup(self.frame, &path).and_then(Kind::of)
    }
}

/// The coarse type of a value, for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Number,
    String,
    Map,
    /// A list, with the kind of its elements when known.
    List(Option<Scalar>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Number,
    String,
}

impl Kind {
    fn of(value: &Value) -> Option<Kind> {
        Some(match value {
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Map(_) => Kind::Map,
            Value::List(items) => Kind::List(items.first().and_then(|v| match Kind::of(v)? {
                Kind::Bool => Some(Scalar::Bool),
                Kind::Number => Some(Scalar::Number),
                Kind::String => Some(Scalar::String),
                Kind::Map | Kind::List(_) => None,
            })),
            _ => return None,
        })
    }

    fn scalar(s: Scalar) -> Kind {
        match s {
            Scalar::Bool => Kind::Bool,
            Scalar::Number => Kind::Number,
            Scalar::String => Kind::String,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "true/false",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Map => "a map",
            Kind::List(_) => "a list",
        }
    }

    fn describe_plural(self) -> &'static str {
        match self {
            Kind::Bool => "true/false values",
            Kind::Number => "numbers",
            Kind::String => "strings",
            Kind::Map => "maps",
            Kind::List(_) => "lists",
        }
    }
}

fn compatible(a: Kind, b: Kind) -> bool {
    match (a, b) {
        (Kind::List(_), Kind::List(_)) => true,
        _ => a == b,
    }
}

/// The dotted path an expression spells (`a.b.c`, `a["b"]`), with the id of
/// its root identifier; `None` for anything else.
fn segments(e: &IdedExpr) -> Option<(u64, Vec<String>)> {
    match &e.expr {
        Node::Ident(name) => Some((e.id, vec![name.clone()])),
        Node::Select(s) => {
            let (id, mut path) = segments(&s.operand)?;
            path.push(s.field.clone());
            Some((id, path))
        }
        Node::Call(c) if c.func_name == operators::INDEX && c.target.is_none() => {
            let [operand, key] = c.args.as_slice() else {
                return None;
            };
            let Node::Literal(LiteralValue::String(key)) = &key.expr else {
                return None;
            };
            let (id, mut path) = segments(operand)?;
            path.push(key.inner().to_owned());
            Some((id, path))
        }
        _ => None,
    }
}

/// A message with `{variable.field}` placeholders, checked at load.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Var(Vec<String>),
}

impl Template {
    pub(crate) fn render(&self, frame: &Frame) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(path) => match lookup(frame, path) {
                    Some(value) => out.push_str(&display(value)),
                    // Cannot happen for a checked template; show the
                    // placeholder rather than fail the decision.
                    None => {
                        out.push('{');
                        out.push_str(&path.join("."));
                        out.push('}');
                    }
                },
            }
        }
        out
    }
}

/// A value as a person reads it in a message.
fn display(value: &Value) -> String {
    match value {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        // f64's Display prints 12.0 as "12" and 1.5 as "1.5".
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}
