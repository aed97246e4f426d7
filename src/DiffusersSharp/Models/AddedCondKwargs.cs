using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>added_cond_kwargs</c> of <c>UNet2DConditionModel.forward</c>: the extra conditioning an
/// <c>addition_embed_type</c> reads. SDXL ("text_time"): <see cref="TextEmbeds"/> (B, D), the pooled text embedding,
/// and <see cref="TimeIds"/> (B, N), its micro-conditioning numbers (original size, crop, target size or aesthetic score).
/// IP-Adapter ("ip_image_proj"): <see cref="ImageEmbeds"/>, the image encoder's embeds (B, D) or penultimate hidden
/// states (B, tokens, hidden), as the loaded adapter's <see cref="IImageProjection.TakesHiddenStates"/> says.
/// </summary>
public sealed record AddedCondKwargs(Tensor? TextEmbeds = null, Tensor? TimeIds = null, Tensor? ImageEmbeds = null);
