using DiffusersSharp.Imaging;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>ImagePipelineOutput</c>. Depending on the <see cref="OutputType"/>: <see cref="Images"/>
/// (8-bit images), or <see cref="Array"/> (float32 NHWC in [0, 1], what diffusers' <c>output_type="np"</c>
/// returns), or <see cref="Tensor"/> (float32 NCHW in [0, 1], <c>output_type="pt"</c>). Dispose it to free
/// the tensor.
/// </summary>
public sealed class ImagePipelineOutput : IDisposable
{
    /// <summary>
    /// Wraps a pipeline's result in the form its output type asked for; the output owns the tensors.
    /// </summary>
    public ImagePipelineOutput(IReadOnlyList<Image>? images = null, Tensor? array = null, Tensor? tensor = null)
    {
        Images = images ?? [];
        Array = array;
        Tensor = tensor;
    }

    /// <summary>The images (empty unless the output type was <see cref="OutputType.Pil"/>).</summary>
    public IReadOnlyList<Image> Images { get; }

    /// <summary>NHWC float32 in [0, 1] (only for <see cref="OutputType.Np"/>).</summary>
    public Tensor? Array { get; }

    /// <summary>NCHW float32 in [0, 1] (only for <see cref="OutputType.Pt"/>).</summary>
    public Tensor? Tensor { get; }

    /// <summary>The images as one grid (rows × cols; square-ish by default).</summary>
    public Image Grid(int? rows = null, int? cols = null) => ImageGrid.Make(Images, rows, cols);

    /// <summary>Disposes the array or tensor.</summary>
    public void Dispose()
    {
        Array?.Dispose();
        Tensor?.Dispose();
    }
}
