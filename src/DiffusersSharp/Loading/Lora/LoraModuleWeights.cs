using static TorchSharp.torch;

namespace DiffusersSharp.Loading.Lora;

/// <summary>
/// The LoRA of one module as read from a file: the component (<c>unet</c>, <c>text_encoder</c>, <c>text_encoder_2</c>),
/// the module's name (a dotted diffusers path, or for kohya files the underscore name after its prefix, resolved against
/// the model by the loader), the two matrices and the alpha (null when the file has none).
/// </summary>
public sealed record LoraModuleWeights(string Component, string Name, bool IsKohyaName, Tensor Down, Tensor Up, double? Alpha, string SourceKey)
{
    /// <summary>The rank: rows of <see cref="Down"/>.</summary>
    public int Rank => (int)Down.shape[0];
}
