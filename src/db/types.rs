//! Rust types of the bot's own Postgres types.

use std::fmt;

use poise::serenity_prelude as serenity;
use sqlx::{
    Decode, Encode, Postgres,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef},
};

use crate::spec::AspectRatio;

/// A Discord id (guild, channel, user, role, message, application, interaction) as the bot's
/// tables hold it: a `bigint` column. The functions of `db` take and return ids as this type,
/// so the conversion between Discord's unsigned ids and Postgres's signed integers happens only
/// here. Discord's ids are snowflakes below 2^63 (their top bits are milliseconds since 2015,
/// which reach 2^63 only in 2084), so every id fits; one that did not would fail its query
/// rather than be stored as a different number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscordId(u64);

impl DiscordId {
    pub const fn new(id: u64) -> DiscordId {
        DiscordId(id)
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DiscordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The bare number, as logs printed the ids before they had a type.
impl fmt::Debug for DiscordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for DiscordId {
    fn from(id: u64) -> DiscordId {
        DiscordId(id)
    }
}

macro_rules! from_serenity_ids {
    ($($id:ident),*) => {$(
        impl From<serenity::$id> for DiscordId {
            fn from(id: serenity::$id) -> DiscordId {
                DiscordId(id.get())
            }
        }
    )*};
}

from_serenity_ids!(GuildId, ChannelId, UserId, RoleId, MessageId, ApplicationId, InteractionId);

impl sqlx::Type<Postgres> for DiscordId {
    fn type_info() -> PgTypeInfo {
        <i64 as sqlx::Type<Postgres>>::type_info()
    }
}

impl PgHasArrayType for DiscordId {
    fn array_type_info() -> PgTypeInfo {
        <i64 as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for DiscordId {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Postgres>>::encode(i64::try_from(self.0)?, buf)
    }
}

impl Decode<'_, Postgres> for DiscordId {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        Ok(DiscordId(u64::try_from(<i64 as Decode<'_, Postgres>>::decode(value)?)?))
    }
}

/// A number for an `integer` column. The commands' bounds keep every value far inside its range;
/// one outside fails the statement rather than being stored as another number.
pub(super) fn int4(value: Option<i64>) -> Result<Option<i32>, sqlx::Error> {
    value.map(i32::try_from).transpose().map_err(|e| sqlx::Error::Encode(e.into()))
}

/// A number read from the database that does not fit the bot's type: an error, never wrapped.
pub(super) fn out_of_range(e: std::num::TryFromIntError) -> sqlx::Error {
    sqlx::Error::Decode(e.into())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_beyond_an_integer_column_is_an_error_not_another_number() {
        assert_eq!(int4(Some(3000)).unwrap(), Some(3000));
        assert_eq!(int4(None).unwrap(), None);
        assert!(int4(Some(i64::from(i32::MAX) + 1)).is_err());
    }
}
