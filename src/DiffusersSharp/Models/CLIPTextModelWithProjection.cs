using DiffusersSharp.Hub;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPTextModelWithProjection</c> (SDXL's second text encoder): the CLIP text tower plus
/// <c>text_projection</c> (no bias) applied to the pooled output.
/// </summary>
public sealed partial class CLIPTextModelWithProjection : nn.Module
{
    private readonly CLIPTextTransformer text_model;
    private readonly Linear text_projection;

    public CLIPTextModelWithProjection(CLIPTextConfig config) : base(nameof(CLIPTextModelWithProjection))
    {
        config.Validate("CLIPTextConfig");
        if (config.ProjectionDim <= 0)
            throw new ConfigException($"CLIPTextConfig: projection_dim must be positive, got {config.ProjectionDim}") { Key = "projection_dim" };
        Config = config;
        using (torch.NewDisposeScope())
        {
            text_model = new CLIPTextTransformer(config);
            text_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
            RegisterComponents();
            ModuleScope.Detach(this);
        }
    }

    public CLIPTextConfig Config { get; private set; }

    /// <summary>Loads a transformers folder as <see cref="CLIPTextModel.FromPretrained"/> does.</summary>
    public static CLIPTextModelWithProjection FromPretrained(string pathOrId, string? subfolder = "text_encoder_2", ScalarType? dtype = null,
        Device? device = null, string? variant = null, HubClient? hub = null, string? revision = null)
    {
        string folder = TextEncoderFolder.Resolve(pathOrId, subfolder, nameof(CLIPTextModelWithProjection), variant, hub, revision);
        var config = TextEncoderFolder.ReadConfig(folder);
        return ModuleScope.Run(() =>
        {
            var model = new CLIPTextModelWithProjection(config);
            TextEncoderFolder.LoadWeights(model, folder, variant, dtype, device);
            model.eval();
            return model;
        });
    }

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> into <paramref name="folder"/> (created if needed).</summary>
    public void SavePretrained(string folder) => TextEncoderFolder.Save(this, Config, folder);

    /// <summary>Encodes token ids [batch, seq]; <see cref="CLIPTextModelOutput.TextEmbeds"/> = text_projection(pooled).</summary>
    public CLIPTextModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, bool outputHiddenStates = false)
    {
        var inner = text_model.Forward(inputIds, attentionMask, outputHiddenStates);
        using (inner.PoolerOutput)
        {
            var embeds = text_projection.forward(inner.PoolerOutput);
            return new CLIPTextModelOutput(embeds, inner.LastHiddenState, inner.HiddenStates);
        }
    }

    /// <summary>The final LayerNorm alone (for clip_skip).</summary>
    public Tensor FinalLayerNorm(Tensor hiddenState) => text_model.FinalLayerNorm(hiddenState);
}
