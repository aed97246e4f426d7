using DiffusersSharp.Loading;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// transformers' <c>CLIPVisionModelWithProjection</c> (the <c>image_encoder</c> of IP-Adapter): the CLIP vision tower
/// (<c>vision_model</c>: patch and position embeddings, <c>pre_layrnorm</c>, the encoder layers the text encoder uses,
/// without a mask, <c>post_layernorm</c> on the class token) and <c>visual_projection</c> (no bias) of the pooled output.
/// </summary>
public sealed class CLIPVisionModelWithProjection : nn.Module
{
    private readonly CLIPVisionTransformer vision_model;
    private readonly Linear visual_projection;

    /// <summary>
    /// Builds the model from its config, with freshly initialised weights (load them with FromPretrained or LoadWeights).
    /// </summary>
    public CLIPVisionModelWithProjection(CLIPVisionConfig config) : base(nameof(CLIPVisionModelWithProjection))
    {
        config.Validate("CLIPVisionConfig");
        Config = config;
        using (torch.NewDisposeScope())
        {
            vision_model = new CLIPVisionTransformer(config);
            visual_projection = Layers.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
            RegisterComponents();
            ModuleScope.Detach(this);
        }
    }

    /// <summary>The config the model was built from.</summary>
    public CLIPVisionConfig Config { get; }

    /// <summary>
    /// Loads a transformers model folder, or its <paramref name="subfolder"/> (<c>"models/image_encoder"</c> of
    /// h94/IP-Adapter), from a local path or a Hub id: <c>config.json</c> and <c>model[.variant].safetensors</c>, else
    /// <c>pytorch_model[.variant].bin</c>. The config is validated naming its file; tensors the model lacks (a full
    /// CLIPModel's text tower) are left out with the load's warning. Its weights belong to no dispose scope (dispose the model).
    /// </summary>
    public static CLIPVisionModelWithProjection FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        ModuleScope.Run(() => ModelLoading.FromPretrained<CLIPVisionConfig, CLIPVisionModelWithProjection>(idOrPath, subfolder, options,
            (config, path) =>
            {
                config.Validate(path);
                return new CLIPVisionModelWithProjection(config);
            },
            CheckpointFormat.Transformers, prepareWeights: (_, weights) => weights.Remove(CLIPVisionTransformer.PositionIdsKey)));

    /// <summary>
    /// transformers' <c>save_pretrained(safe_serialization=True)</c>: <c>config.json</c> and <c>model.safetensors</c>.
    /// </summary>
    public void SavePretrained(string folder) => ModelLoading.SavePretrained(this, Config, folder, CheckpointFormat.Transformers);

    /// <summary>The dtype of the weights.</summary>
    public ScalarType Dtype => parameters().First().dtype;

    /// <summary>The device of the weights.</summary>
    public Device Device => parameters().First().device;

    /// <summary>
    /// Encodes pixel values [batch, num_channels, image_size, image_size] (as <c>CLIPImageProcessor</c> makes them; converted
    /// to the model's dtype and device); <see cref="CLIPVisionModelOutput.ImageEmbeds"/> = visual_projection(pooled).
    /// </summary>
    public CLIPVisionModelOutput Forward(Tensor pixelValues, bool outputHiddenStates = false)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        var c = Config;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != c.NumChannels || pixelValues.shape[0] == 0
            || pixelValues.shape[2] / c.PatchSize != c.PatchesPerSide || pixelValues.shape[3] / c.PatchSize != c.PatchesPerSide)
            throw new ArgumentException(
                $"CLIPVisionModelWithProjection expects pixel_values of shape [batch, {c.NumChannels}, {c.ImageSize}, {c.ImageSize}] " +
                $"(num_channels, image_size), got {Layers.Shape(pixelValues)}", nameof(pixelValues));
        if (!pixelValues.is_floating_point())
            throw new ArgumentException($"pixel_values must be floating point (normalised), got {pixelValues.dtype}", nameof(pixelValues));
        using var scope = torch.NewDisposeScope();
        var (last, pooled, hidden) = vision_model.Forward(pixelValues.to(Dtype, Device), outputHiddenStates);
        var embeds = visual_projection.forward(pooled);
        last.MoveToOuterDisposeScope();
        embeds.MoveToOuterDisposeScope();
        if (hidden is not null) foreach (var t in hidden) t.MoveToOuterDisposeScope();
        return new CLIPVisionModelOutput(embeds, last, hidden);
    }
}
