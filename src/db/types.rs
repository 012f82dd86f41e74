//! Rust types of the bot's own Postgres types.

use sqlx::{
    Decode, Encode, Postgres,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
};

use crate::spec::AspectRatio;

/// The Postgres enum `aspect_ratio`, whose labels are the ratios as written (`16:9`).
impl sqlx::Type<Postgres> for AspectRatio {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("aspect_ratio")
    }
}

impl Encode<'_, Postgres> for AspectRatio {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'_, Postgres>>::encode(self.as_str(), buf)
    }
}

impl Decode<'_, Postgres> for AspectRatio {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        let label = <&str as Decode<'_, Postgres>>::decode(value)?;
        AspectRatio::parse_exact(label).ok_or_else(|| format!("{label:?} is not an aspect ratio the bot knows").into())
    }
}
