using DiffusersSharp.Loading;
using DiffusersSharp.Runtime;
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

    /// <summary>
    /// Builds the model from its config, with freshly initialised weights (load them with FromPretrained or
    /// LoadWeights).
    /// </summary>
    public CLIPTextModelWithProjection(CLIPTextConfig config) : base(nameof(CLIPTextModelWithProjection))
    {
        config.Validate("CLIPTextConfig");
        if (config.ProjectionDim <= 0)
            throw new ConfigException($"CLIPTextConfig: projection_dim must be positive, got {config.ProjectionDim}") { Key = "projection_dim" };
        Config = config;
        using (torch.NewDisposeScope())
        {
            text_model = new CLIPTextTransformer(config);
            text_projection = Layers.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
            RegisterComponents();
            ModuleScope.Detach(this);
        }
    }

    /// <summary>The config the model was built from.</summary>
    public CLIPTextConfig Config { get; private set; }

    /// <summary>
    /// Loads a transformers model folder, or its <paramref name="subfolder"/> (<c>"text_encoder_2"</c> of a pipeline), from a
    /// local path or a Hub id (the Hugging Face cache, downloading when allowed: <see cref="PretrainedLocator"/>):
    /// <c>config.json</c> and <c>model[.variant].safetensors</c>, else <c>pytorch_model[.variant].bin</c>, sharded or not.
    /// The model is converted to the options' dtype / moved to their device before the weights are copied in, and is in
    /// eval mode. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static CLIPTextModelWithProjection FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        CLIPTextTransformer.FromPretrained(idOrPath, subfolder, options, config => new CLIPTextModelWithProjection(config));

    /// <summary>
    /// transformers' <c>save_pretrained(safe_serialization=True)</c>: <c>config.json</c> (the config's keys, unknown ones
    /// included) and <c>model.safetensors</c> (every weight in the model's dtype, metadata format "pt"), atomically, into
    /// <paramref name="folder"/> (created if needed).
    /// </summary>
    public void SavePretrained(string folder) => ModelLoading.SavePretrained(this, Config, folder, CheckpointFormat.Transformers);

    /// <summary>The dtype of the weights.</summary>
    public ScalarType Dtype => parameters().First().dtype;

    /// <summary>Encodes token ids [batch, seq]; <see cref="CLIPTextModelOutput.TextEmbeds"/> = text_projection(pooled).</summary>
    public CLIPTextModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, bool outputHiddenStates = false)
    {
        var inner = text_model.Forward(inputIds, attentionMask, outputHiddenStates);
        using (inner.PoolerOutput)
        {
            var embeds = TorchUtils.Scoped(() => text_projection.forward(inner.PoolerOutput));
            return new CLIPTextModelOutput(embeds, inner.LastHiddenState, inner.HiddenStates);
        }
    }

    /// <summary>The final LayerNorm alone (for clip_skip).</summary>
    public Tensor FinalLayerNorm(Tensor hiddenState) => text_model.FinalLayerNorm(hiddenState);
}
