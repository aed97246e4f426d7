namespace DiffusersSharp.Imaging;

/// <summary>How <see cref="ImageProcessor.Resize"/> and <see cref="ImageProcessor.Preprocess(IReadOnlyList{Image}, int?, int?, int, ResampleFilter, bool, bool, ResizeMode, CropRegion?)"/> fit an image to a size (diffusers' <c>resize_mode</c>).</summary>
public enum ResizeMode
{
    /// <summary>"default": stretched to the size, the aspect ratio not kept.</summary>
    Default,
    /// <summary>"fill": fitted inside the size keeping the aspect ratio, the bands left filled from its edges (<see cref="ImageResize.ResizeAndFill"/>).</summary>
    Fill,
    /// <summary>"crop": fitted over the size keeping the aspect ratio, the excess cut off (<see cref="ImageResize.ResizeAndCrop"/>).</summary>
    Crop,
}
