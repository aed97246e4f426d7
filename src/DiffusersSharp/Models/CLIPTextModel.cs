using DiffusersSharp.Hub;
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

    public CLIPTextConfig Config { get; private set; }

    /// <summary>
    /// Loads <paramref name="pathOrId"/>/<paramref name="subfolder"/> (<c>config.json</c> and <c>model.safetensors</c>
    /// or <c>pytorch_model.bin</c>, sharded or not, optionally the <paramref name="variant"/> such as
    /// <c>model.fp16.safetensors</c>); the model is in eval mode. A Hub repository id is fetched through
    /// <paramref name="hub"/> (default: a client from the environment) into the Hub cache, safetensors first.
    /// </summary>
    public static CLIPTextModel FromPretrained(string pathOrId, string? subfolder = "text_encoder", ScalarType? dtype = null,
        Device? device = null, string? variant = null, HubClient? hub = null, string? revision = null)
    {
        string folder = TextEncoderFolder.Resolve(pathOrId, subfolder, nameof(CLIPTextModel), variant, hub, revision);
        var config = TextEncoderFolder.ReadConfig(folder);
        return ModuleScope.Run(() =>
        {
            var model = new CLIPTextModel(config);
            TextEncoderFolder.LoadWeights(model, folder, variant, dtype, device);
            model.eval();
            return model;
        });
    }

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> into <paramref name="folder"/> (created if needed).</summary>
    public void SavePretrained(string folder) => TextEncoderFolder.Save(this, Config, folder);

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
