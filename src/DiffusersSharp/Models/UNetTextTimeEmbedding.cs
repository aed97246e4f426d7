using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// SDXL's added embedding (<c>addition_embed_type</c> "text_time"): each of the <c>time_ids</c> through the sinusoidal
/// <c>add_time_proj</c>, flattened per sample, after the pooled <c>text_embeds</c>, through <c>add_embedding</c>:
/// <c>add_embedding(cat([text_embeds, add_time_proj(time_ids.flatten()).reshape(B, -1)], -1))</c>.
/// </summary>
internal sealed class UNetTextTimeEmbedding(Timesteps addTimeProj, TimestepEmbedding addEmbedding, int inputDim) : IUNetEmbedding
{
    private const string Needs = "UNet2DConditionModel has the config param `addition_embed_type` set to 'text_time' which requires the keyword argument `{0}` to be passed in `added_cond_kwargs`";

    public Tensor Forward(UNetEmbeddingInputs inputs)
    {
        var textEmbeds = inputs.AddedCondKwargs?.TextEmbeds ?? throw new ArgumentException(string.Format(Needs, "text_embeds"));
        var timeIds = inputs.AddedCondKwargs.TimeIds ?? throw new ArgumentException(string.Format(Needs, "time_ids"));
        if (textEmbeds.dim() != 2)
            throw new ArgumentException($"UNet2DConditionModel: text_embeds (the pooled prompt embeddings) must be [batch, dim], got {Layers.Shape(textEmbeds)}", "text_embeds");
        long batch = textEmbeds.shape[0];
        long width = batch > 0 && timeIds.numel() % batch == 0 ? textEmbeds.shape[1] + timeIds.numel() / batch * addTimeProj.NumChannels : -1;
        if (width != inputDim)
            throw new ArgumentException($"UNet2DConditionModel: text_embeds {Layers.Shape(textEmbeds)} and time_ids {Layers.Shape(timeIds)} (each id embedded in {addTimeProj.NumChannels}) make {width} features per sample, but projection_class_embeddings_input_dim is {inputDim}");
        var timeEmbeds = addTimeProj.Forward(timeIds.flatten());
        inputs.Hook?.Invoke("add_time_proj", timeEmbeds);
        timeEmbeds = timeEmbeds.reshape(batch, -1);
        var addEmbeds = torch.cat([textEmbeds, timeEmbeds], dim: -1).to_type(inputs.DType);
        var augEmb = addEmbedding.Forward(addEmbeds);
        inputs.Hook?.Invoke("add_embedding", augEmb);
        return augEmb;
    }
}
