//! Turns a JSON body into typed, checked input, collecting every field problem at once.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Student,
    Instructor,
}

impl Role {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::Instructor => "instructor",
        }
    }
}

/// Whether every field must be present (POST, PUT) or any subset (PATCH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Full,
    Partial,
}

/// User fields sent by a client, already normalised; `None` = not sent (PATCH only).
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
}

/// Course fields sent by a client; `None` = not sent (PATCH only).
#[derive(Debug, Clone, Default)]
pub struct CourseInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub instructor_id: Option<Uuid>,
}

const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 10_000;
const EMAIL_MAX: usize = 254;

/// Parses a user body. Unknown fields, wrong types and invalid values are all reported.
pub fn parse_user(body: &Value, mode: Completeness) -> Result<UserInput, Vec<FieldError>> {
    let mut f = Fields::new(body, &["email", "name", "role"])?;
    let input = UserInput {
        email: f
            .string("email", mode == Completeness::Full)
            .and_then(|raw| f.check("email", email(&raw))),
        name: f
            .string("name", mode == Completeness::Full)
            .and_then(|raw| f.check("name", bounded_text(&raw, NAME_MAX))),
        role: f
            .string("role", mode == Completeness::Full)
            .and_then(|raw| f.check("role", role(&raw))),
    };
    f.finish(input)
}

/// Parses a course body. `description` may be omitted (empty) even on POST and PUT.
pub fn parse_course(body: &Value, mode: Completeness) -> Result<CourseInput, Vec<FieldError>> {
    let mut f = Fields::new(body, &["title", "description", "instructor_id"])?;
    let full = mode == Completeness::Full;
    let mut description = f.string("description", false);
    if description.is_none() && full && !f.had_error("description") {
        description = Some(String::new());
    }
    let input = CourseInput {
        title: f
            .string("title", full)
            .and_then(|raw| f.check("title", bounded_text(&raw, NAME_MAX))),
        description: description.and_then(|raw| {
            f.check(
                "description",
                if raw.chars().count() > DESCRIPTION_MAX {
                    Err(format!("must be at most {DESCRIPTION_MAX} characters"))
                } else {
                    Ok(raw)
                },
            )
        }),
        instructor_id: f
            .string("instructor_id", full)
            .and_then(|raw| f.check("instructor_id", parse_uuid(&raw))),
    };
    f.finish(input)
}

/// Parses an id from a path or cursor.
pub fn parse_uuid(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw.trim()).map_err(|_| "must be a UUID".to_string())
}

fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    if e.len() > EMAIL_MAX {
        return Err(format!("must be at most {EMAIL_MAX} characters"));
    }
    let mut parts = e.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None)
            if !local.is_empty() && !domain.is_empty() && !e.chars().any(char::is_whitespace) =>
        {
            Ok(e)
        }
        _ => Err("must be an email address with exactly one '@'".into()),
    }
}

fn bounded_text(raw: &str, max: usize) -> Result<String, String> {
    let t = raw.trim();
    match t.chars().count() {
        0 => Err("must not be empty".into()),
        n if n > max => Err(format!("must be at most {max} characters")),
        _ => Ok(t.to_string()),
    }
}

fn role(raw: &str) -> Result<Role, String> {
    match raw {
        "student" => Ok(Role::Student),
        "instructor" => Ok(Role::Instructor),
        _ => Err("must be `student` or `instructor`".into()),
    }
}

/// Walks a JSON object field by field, remembering every error.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Value, allowed: &[&str]) -> Result<Self, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let errors = obj
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| FieldError::new(k.clone(), "unknown field"))
            .collect();
        Ok(Self { obj, errors })
    }

    fn string(&mut self, field: &str, required: bool) -> Option<String> {
        match self.obj.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.push(FieldError::new(field, "must be a string"));
                None
            }
            None if required => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
            None => None,
        }
    }

    fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.errors.push(FieldError::new(field, m)))
            .ok()
    }

    fn had_error(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_and_collects_errors() {
        let ok = parse_user(
            &json!({"email": " Ada@Example.COM ", "name": " Ada ", "role": "student"}),
            Completeness::Full,
        )
        .expect("valid");
        assert_eq!(ok.email.as_deref(), Some("ada@example.com"));
        assert_eq!(ok.name.as_deref(), Some("Ada"));
        let errs = parse_user(
            &json!({"email": "a@b@c", "name": 3, "extra": 1}),
            Completeness::Full,
        )
        .expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"extra") && fields.contains(&"email"));
        assert!(fields.contains(&"name") && fields.contains(&"role"));
        assert!(parse_user(&json!({}), Completeness::Partial).is_ok());
    }
}
