//! Every error code a node failure can carry: one enum, serialised to the strings the wire and
//! the `$error.code` context key have always shown (`"HTTP_STATUS"`, `"CANCELLED"`, …).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A machine-readable node failure code. Its string form (`as_str`, `Display`, serde) is part
/// of the wire format: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // The engine.
    /// The execution stopped (halt or cancel) while the node ran: the branch just ends.
    Cancelled,
    /// The node ran past its `timeout_ms`.
    NodeTimeout,
    /// A template in the node's parameters could not be resolved.
    TemplateError,
    /// A conditional's expression could not be evaluated.
    ExpressionError,
    /// The node's parameters are invalid: retrying would fail the same way.
    InvalidParameter,
    /// The node's type is not registered in this runtime.
    NodeCreationFailed,
    /// The node asked for more than a limit allows (a split over its item cap).
    LimitExceeded,
    /// A wait in signal mode: the signal did not arrive within its timeout.
    SignalTimeout,
    /// The execution ran past its deadline (the workflow's `timeout_ms`).
    ExecutionTimeout,
    /// The node references a vault credential, but the runtime has no vault.
    CredentialVaultMissing,
    /// The referenced credential is not in the vault.
    CredentialNotFound,
    /// The referenced credential cannot be decrypted or parsed.
    CredentialUnreadable,
    /// The vault could not be read (an outage that may pass).
    CredentialUnavailable,
    /// The credential may not be used here: the target host is not in its `hosts`, or the
    /// workflow is not in its `workflows`.
    CredentialScope,
    // Sub-workflows.
    /// A `workflow` node ran in a runtime without a workflow catalog.
    NoWorkflowCatalog,
    /// The workflow (or version) to start is not in the catalog.
    WorkflowNotFound,
    /// The workflow to start does not compile.
    InvalidWorkflow,
    /// Starting the child would exceed the sub-workflow depth limit.
    WorkflowDepthExceeded,
    /// The child execution failed or was halted.
    SubworkflowFailed,
    // The `http` node.
    /// `raise_on_status` matched the response status.
    HttpStatus,
    /// Connection, TLS, redirect or protocol failure.
    HttpRequestFailed,
    /// The `timeout` elapsed before the response body was read.
    HttpTimeout,
    /// The response body exceeded `max_response_bytes`.
    HttpBodyTooLarge,
    /// The URL, a redirect target or every address of the host is denied by the SSRF guard
    /// (`allowed_hosts`, `denied_hosts`, private networks).
    HttpHostDenied,
    /// More redirects than `max_redirects`.
    HttpTooManyRedirects,
    /// The HTTP client could not be built (TLS backend initialisation).
    HttpClient,
    // Nodes with credentials (`http`, `smtp`).
    /// The node's credentials are missing a field their type needs, or are invalid.
    InvalidCredentials,
    // The `smtp` node.
    /// Connection, TLS, authentication or SMTP failure (the server rejected a command).
    SmtpFailed,
    /// The `timeout` elapsed before the server accepted the message.
    SmtpTimeout,
    // Every connector but `http` (which keeps `HTTP_HOST_DENIED`).
    /// The egress guard refused the target: a private, loopback or metadata address, or a
    /// host outside `BATON_EGRESS_ALLOW`.
    EgressDenied,
    // The `code` node.
    /// The script raised an error (`throw`, a type error, a missing variable, …).
    CodeError,
    /// The script hit a sandbox limit (operations, call depth, sizes, variables, …, or the
    /// sandbox process's memory or CPU cap).
    CodeLimitExceeded,
    /// The script ran past `timeout_ms`.
    CodeTimeout,
    // The runtime itself.
    /// Something in the runtime failed, not the node's work (e.g. the `code` node's sandbox
    /// process could not be started); the message names what.
    Internal,
}

impl ErrorCode {
    /// The code as the wire and the context show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::NodeTimeout => "NODE_TIMEOUT",
            Self::TemplateError => "TEMPLATE_ERROR",
            Self::ExpressionError => "EXPRESSION_ERROR",
            Self::InvalidParameter => "INVALID_PARAMETER",
            Self::NodeCreationFailed => "NODE_CREATION_FAILED",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::SignalTimeout => "SIGNAL_TIMEOUT",
            Self::ExecutionTimeout => "EXECUTION_TIMEOUT",
            Self::CredentialVaultMissing => "CREDENTIAL_VAULT_MISSING",
            Self::CredentialNotFound => "CREDENTIAL_NOT_FOUND",
            Self::CredentialUnreadable => "CREDENTIAL_UNREADABLE",
            Self::CredentialUnavailable => "CREDENTIAL_UNAVAILABLE",
            Self::CredentialScope => "CREDENTIAL_SCOPE",
            Self::NoWorkflowCatalog => "NO_WORKFLOW_CATALOG",
            Self::WorkflowNotFound => "WORKFLOW_NOT_FOUND",
            Self::InvalidWorkflow => "INVALID_WORKFLOW",
            Self::WorkflowDepthExceeded => "WORKFLOW_DEPTH_EXCEEDED",
            Self::SubworkflowFailed => "SUBWORKFLOW_FAILED",
            Self::HttpStatus => "HTTP_STATUS",
            Self::HttpRequestFailed => "HTTP_REQUEST_FAILED",
            Self::HttpTimeout => "HTTP_TIMEOUT",
            Self::HttpBodyTooLarge => "HTTP_BODY_TOO_LARGE",
            Self::HttpHostDenied => "HTTP_HOST_DENIED",
            Self::HttpTooManyRedirects => "HTTP_TOO_MANY_REDIRECTS",
            Self::HttpClient => "HTTP_CLIENT",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::SmtpFailed => "SMTP_FAILED",
            Self::SmtpTimeout => "SMTP_TIMEOUT",
            Self::EgressDenied => "EGRESS_DENIED",
            Self::CodeError => "CODE_ERROR",
            Self::CodeLimitExceeded => "CODE_LIMIT_EXCEEDED",
            Self::CodeTimeout => "CODE_TIMEOUT",
            Self::Internal => "INTERNAL",
        }
    }

    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 34] = [
        Self::Cancelled,
        Self::NodeTimeout,
        Self::TemplateError,
        Self::ExpressionError,
        Self::InvalidParameter,
        Self::NodeCreationFailed,
        Self::LimitExceeded,
        Self::SignalTimeout,
        Self::ExecutionTimeout,
        Self::CredentialVaultMissing,
        Self::CredentialNotFound,
        Self::CredentialUnreadable,
        Self::CredentialUnavailable,
        Self::CredentialScope,
        Self::NoWorkflowCatalog,
        Self::WorkflowNotFound,
        Self::InvalidWorkflow,
        Self::WorkflowDepthExceeded,
        Self::SubworkflowFailed,
        Self::HttpStatus,
        Self::HttpRequestFailed,
        Self::HttpTimeout,
        Self::HttpBodyTooLarge,
        Self::HttpHostDenied,
        Self::HttpTooManyRedirects,
        Self::HttpClient,
        Self::InvalidCredentials,
        Self::SmtpFailed,
        Self::SmtpTimeout,
        Self::EgressDenied,
        Self::CodeError,
        Self::CodeLimitExceeded,
        Self::CodeTimeout,
        Self::Internal,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn serde_display_and_as_str_agree_on_every_code() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::from(code.as_str()), "{code:?}");
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
    }
}
