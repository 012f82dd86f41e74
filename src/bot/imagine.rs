//! `/imagine`: what the member typed and attached, handed to the one road to a job
//! (`super::create`), which validates, reserves quota and stores the job, then answers publicly
//! within Discord's three seconds. The provider is never called from here; the worker takes the
//! job from the database.

use poise::serenity_prelude as serenity;
use tracing::Instrument;

use super::{
    Context, Error,
    create::{self, Origin},
    interaction::Interaction,
};
use crate::{
    imagine::{ImagineRequest, InputImage, defaults::Choices},
    spec::{AspectRatio, Performance},
};

fn input(attachment: Option<serenity::Attachment>) -> Option<InputImage> {
    attachment.map(|a| InputImage {
        filename: a.filename,
        content_type: a.content_type,
        size: u64::from(a.size),
        url: a.url,
    })
}

/// Turn your images into new ones with Midjourney v7
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn imagine(
    ctx: Context<'_>,
    #[description = "What to imagine. Flags like --ar 16:9 --chaos 20 --no cars may follow at the end"]
    #[max_length = 1500]
    prompt: String,
    #[description = "The source image (PNG, JPEG or WebP)"] image: serenity::Attachment,
    #[description = "A second source image"] image2: Option<serenity::Attachment>,
    #[description = "Shape of the result (default 1:1)"] aspect_ratio: Option<AspectRatio>,
    #[description = "Speed or quality (default balance)"] performance: Option<Performance>,
    #[description = "How strongly Midjourney's style applies, 0-1000 (default 100)"]
    #[min = 0]
    #[max = 1000]
    stylization: Option<i64>,
    #[description = "How varied the results are, 0-100 (default 0)"]
    #[min = 0]
    #[max = 100]
    chaos: Option<i64>,
    #[description = "How unusual the results are, 0-3000 (default 0)"]
    #[min = 0]
    #[max = 3000]
    weirdness: Option<i64>,
    #[description = "What to leave out of the picture"]
    #[max_length = 500]
    negative_prompt: Option<String>,
    #[description = "A style reference image"] style_image: Option<serenity::Attachment>,
    #[description = "How strongly the style reference applies, 0-1000 (default 100)"]
    #[min = 0]
    #[max = 1000]
    style_weight: Option<i64>,
    #[description = "An omni reference image: put this in the picture"] omni_image: Option<serenity::Attachment>,
    #[description = "How strongly the omni reference applies, 0-2000 (default 100)"]
    #[min = 0]
    #[max = 2000]
    omni_weight: Option<i64>,
) -> Result<(), Error> {
    let poise::Context::Application(actx) = ctx else {
        return Ok(());
    };
    let request = ImagineRequest {
        prompt,
        image: input(Some(image)),
        image2: input(image2),
        chosen: Choices { aspect_ratio, performance, stylization, chaos, weirdness, negative_prompt },
        style_image: input(style_image),
        style_weight,
        omni_image: input(omni_image),
        omni_weight,
    };
    let asked = Interaction::command(actx.interaction);
    let span = tracing::info_span!(
        "command",
        name = "imagine",
        guild_id = asked.guild_id.map(|g| g.get()),
        user_id = asked.user_id.get()
    );
    create::create(ctx.serenity_context(), ctx.data(), &asked, Origin::Command(Box::new(request)))
        .instrument(span)
        .await
}
