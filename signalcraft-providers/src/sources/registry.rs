//! The source registry: provider type name → [`SourceType`], listed explicitly in
//! [`Registry::builtin`] (no linker magic), extensible with [`Registry::register`].

use std::collections::BTreeMap;

use signalcraft_core::provider::{Provider, ProviderError};

use super::integration::Integration;

/// Whether a built provider checks authenticity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// `verify` checks signatures/tokens as configured (the default for servers).
    Verify,
    /// `verify` accepts everything and secrets are not required. For operator tools
    /// (`signalcraft normalize --no-verify`) and trusted networks only.
    Skip,
}

/// A kind of inbound source: validates integrations of its type and builds providers.
///
/// Object-safe, so embedders can [`Registry::register`] their own.
pub trait SourceType: Send + Sync {
    /// The provider type name, e.g. `grafana`. Unique within a registry.
    fn provider_type(&self) -> &str;

    /// The secret names this source takes: `(required, optional)`.
    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]);

    /// The secret `signalcraft normalize --secret` fills in, if the source has one.
    fn primary_secret(&self) -> Option<&'static str>;

    /// Builds a provider for `integration`. Validates options and (unless
    /// `verification` is `Skip`) the secrets; never panics.
    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError>;

    /// Checks an integration when it is saved: options well-formed, required secrets
    /// present, every secret well-formed.
    fn validate(&self, integration: &Integration) -> Result<(), ProviderError> {
        self.build(integration, Verification::Verify).map(|_| ())
    }
}

/// Source types by name.
pub struct Registry {
    types: BTreeMap<String, Box<dyn SourceType>>,
    /// The SNS signing-certificate cache the built-in `cloudwatch` type shares with
    /// every provider it builds.
    #[cfg(feature = "source-cloudwatch")]
    certificates: super::sns::CertificateCache,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// A registry with no types.
    pub fn empty() -> Self {
        Registry {
            types: BTreeMap::new(),
            #[cfg(feature = "source-cloudwatch")]
            certificates: super::sns::CertificateCache::new(),
        }
    }

    /// Every built-in source enabled by cargo features. Adding a source adds one line here.
    pub fn builtin() -> Self {
        // `mut` is unused only when every source feature is off.
        #[allow(unused_mut)]
        let mut r = Self::empty();
        #[cfg(feature = "source-alertmanager")]
        r.register(Box::new(super::alertmanager::AlertmanagerType));
        #[cfg(feature = "source-grafana")]
        r.register(Box::new(super::grafana::GrafanaType));
        #[cfg(feature = "source-cloudwatch")]
        r.register(Box::new(super::cloudwatch::CloudWatchType::with_cache(
            r.certificates.clone(),
        )));
        #[cfg(feature = "source-github")]
        r.register(Box::new(super::github::GitHubType));
        #[cfg(feature = "source-gitlab")]
        r.register(Box::new(super::gitlab::GitLabType));
        #[cfg(feature = "source-sentry")]
        r.register(Box::new(super::sentry::SentryType));
        #[cfg(feature = "source-datadog")]
        r.register(Box::new(super::datadog::DatadogType));
        #[cfg(feature = "source-pagerduty")]
        r.register(Box::new(super::pagerduty::PagerDutyType));
        #[cfg(feature = "source-generic")]
        r.register(Box::new(super::generic::GenericType));
        r
    }

    /// The SNS signing-certificate cache used by the built-in `cloudwatch` type: a
    /// fetcher inserts certificates here (after [`super::sns::check_signing_cert_url`])
    /// and every `cloudwatch` provider built by this registry sees them. A
    /// `cloudwatch` type registered by the embedder uses its own cache instead.
    #[cfg(feature = "source-cloudwatch")]
    pub fn certificate_cache(&self) -> &super::sns::CertificateCache {
        &self.certificates
    }

    /// Adds (or replaces) a source type under its `provider_type()`.
    pub fn register(&mut self, source: Box<dyn SourceType>) -> &mut Self {
        self.types
            .insert(source.provider_type().to_string(), source);
        self
    }

    /// The registered type names, sorted.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// The source type named `provider_type`.
    pub fn get(&self, provider_type: &str) -> Result<&dyn SourceType, ProviderError> {
        self.types
            .get(provider_type)
            .map(|b| b.as_ref())
            .ok_or_else(|| ProviderError::UnknownProvider(provider_type.to_string()))
    }

    /// Validates an integration against its type.
    pub fn validate(&self, integration: &Integration) -> Result<(), ProviderError> {
        self.get(&integration.provider_type)?.validate(integration)
    }

    /// Builds a verifying provider for an integration.
    pub fn build(&self, integration: &Integration) -> Result<Box<dyn Provider>, ProviderError> {
        self.get(&integration.provider_type)?
            .build(integration, Verification::Verify)
    }

    /// Builds a provider with an explicit verification mode.
    pub fn build_with(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        self.get(&integration.provider_type)?
            .build(integration, verification)
    }
}
