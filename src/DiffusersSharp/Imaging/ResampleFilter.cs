namespace DiffusersSharp.Imaging;

/// <summary>Resampling filters of <see cref="ImageResize"/> (Pillow's names and kernels).</summary>
public enum ResampleFilter
{
    /// <summary>Pillow's NEAREST.</summary>
    Nearest,
    /// <summary>Pillow's BOX (area average).</summary>
    Box,
    /// <summary>Pillow's BILINEAR (triangle kernel, support 1, widened when downscaling).</summary>
    Bilinear,
    /// <summary>Pillow's HAMMING.</summary>
    Hamming,
    /// <summary>Pillow's BICUBIC (a = −0.5, support 2).</summary>
    Bicubic,
    /// <summary>Pillow's LANCZOS (support 3), diffusers' <c>VaeImageProcessor</c> default.</summary>
    Lanczos,
}
