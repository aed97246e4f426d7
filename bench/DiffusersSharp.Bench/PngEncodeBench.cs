using System.Diagnostics;
using DiffusersSharp.Imaging;
using SkiaSharp;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- png-encode [--image path.png] [--runs 9]</c>: PNG encoding of a generated image (e2e's 512² output by
/// default): <see cref="Image.ToPng"/> against SkiaSharp's encoder with each row filter and zlib level; median
/// milliseconds and bytes.
/// </summary>
public static class PngEncodeBench
{
    public static int Run(string imagePath, int runs)
    {
        var image = Image.Load(imagePath);
        Console.WriteLine($"PNG encode of {imagePath} ({image.Width}x{image.Height}), median of {runs}");
        Measure($"Image.ToPng (the library's, zlib {Image.DefaultPngCompressLevel})", runs, () => image.ToPng());
        Measure("Image.ToPng(6) (PIL's default level)", runs, () => image.ToPng(6));
        using var bitmap = image.ToSKBitmap();
        using var pixmap = bitmap.PeekPixels();
        foreach (var filter in new[] { SKPngEncoderFilterFlags.AllFilters, SKPngEncoderFilterFlags.Sub,
                     SKPngEncoderFilterFlags.Up, SKPngEncoderFilterFlags.Paeth })
            foreach (int level in new[] { 6, 4, 3, 2, 1 })
                Measure($"filters {filter}, zlib {level}", runs, () =>
                {
                    using var data = pixmap.Encode(new SKPngEncoderOptions(filter, level));
                    return data.ToArray();
                });
        return 0;
    }

    private static void Measure(string name, int runs, Func<byte[]> encode)
    {
        int bytes = encode().Length;
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            encode();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        Console.WriteLine($"  {name,-44} {times[runs / 2],8:F1} ms  {bytes,9} bytes");
    }
}
