using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPTextModel</c> (4.36), the text encoder of Stable Diffusion: token + position
/// embeddings, <c>num_hidden_layers</c> pre-norm transformer layers with causal self-attention, a final
/// LayerNorm, and the pooled output at the EOS position. Weight names are transformers'
/// (<c>text_model.encoder.layers.0.self_attn.q_proj.weight</c>, …).
/// </summary>
public sealed partial class CLIPTextModel : nn.Module
{
    private readonly CLIPTextTransformer text_model;

    /// <summary>
    /// Builds the model from its config, with freshly initialised weights (load them with FromPretrained or
    /// LoadWeights).
    /// </summary>
    public CLIPTextModel(CLIPTextConfig config) : base(nameof(CLIPTextModel))
    {
        config.Validate("CLIPTextConfig");
        Config = config;
        using (torch.NewDisposeScope())
        {
            text_model = new CLIPTextTransformer(config);
            RegisterComponents();
            ModuleScope.Detach(this);
        }
    }

    /// <summary>The config the model was built from.</summary>
    public CLIPTextConfig Config { get; private set; }

    /// <summary>
    /// Loads a transformers model folder, or its <paramref name="subfolder"/> (<c>"text_encoder"</c> of a pipeline), from a
    /// local path or a Hub id (the Hugging Face cache, downloading when allowed: <see cref="PretrainedLocator"/>):
    /// <c>config.json</c> and <c>model[.variant].safetensors</c>, else <c>pytorch_model[.variant].bin</c>, sharded or not.
    /// The model is converted to the options' dtype / moved to their device before the weights are copied in, and is in
    /// eval mode. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static CLIPTextModel FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        CLIPTextTransformer.FromPretrained(idOrPath, subfolder, options, config => new CLIPTextModel(config));

    /// <summary>
    /// transformers' <c>save_pretrained(safe_serialization=True)</c>: <c>config.json</c> (the config's keys, unknown ones
    /// included) and <c>model.safetensors</c> (every weight in the model's dtype, metadata format "pt"), atomically, into
    /// <paramref name="folder"/> (created if needed).
    /// </summary>
    public void SavePretrained(string folder) => ModelLoading.SavePretrained(this, Config, folder, CheckpointFormat.Transformers);

    /// <summary>
    /// Encodes token ids [batch, seq] (int64; seq ≤ max_position_embeddings). <paramref name="attentionMask"/>
    /// (1 = token, 0 = padding) is optional; Stable Diffusion passes none.
    /// </summary>
    public BaseModelOutputWithPooling Forward(Tensor inputIds, Tensor? attentionMask = null, bool outputHiddenStates = false) =>
        text_model.Forward(inputIds, attentionMask, outputHiddenStates);

    /// <summary>The final LayerNorm alone (diffusers applies it to <c>hidden_states[-(clip_skip + 1)]</c>).</summary>
    public Tensor FinalLayerNorm(Tensor hiddenState) => text_model.FinalLayerNorm(hiddenState);

    /// <summary>The dtype of the weights.</summary>
    public ScalarType Dtype => parameters().First().dtype;

    /// <summary>The device of the weights.</summary>
    public Device Device => parameters().First().device;
}
