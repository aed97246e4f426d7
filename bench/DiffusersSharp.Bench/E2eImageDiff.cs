using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Bench;

/// <summary>
/// The quality cost of a lower-precision run (issue 14, item 3): its image against the fp32 image of the same scenario and
/// seed, in 8-bit levels: the largest and the mean difference, the share of values within 1 and within 8 levels, and PSNR.
/// </summary>
public static class E2eImageDiff
{
    /// <summary>One summary line, or why there is none (an image missing, sizes differ).</summary>
    public static string Describe(string scenario, string dtype, string fp32Png, string otherPng)
    {
        if (!File.Exists(fp32Png) || !File.Exists(otherPng)) return $"{scenario} {dtype} vs fp32: no image to compare";
        var a = Image.Load(fp32Png);
        var b = Image.Load(otherPng);
        if (a.Width != b.Width || a.Height != b.Height || a.Channels != b.Channels)
            return $"{scenario} {dtype} vs fp32: sizes differ ({a} vs {b})";
        int max = 0;
        long sum = 0, within1 = 0, within8 = 0;
        double squares = 0;
        for (int i = 0; i < a.Pixels.Length; i++)
        {
            int d = Math.Abs(a.Pixels[i] - b.Pixels[i]);
            max = Math.Max(max, d);
            sum += d;
            squares += (double)d * d;
            if (d <= 1) within1++;
            if (d <= 8) within8++;
        }
        double n = a.Pixels.Length, mse = squares / n;
        string psnr = mse == 0 ? "inf" : $"{10 * Math.Log10(255.0 * 255.0 / mse):F1} dB";
        return $"{scenario} {dtype} vs fp32 image: max {max}/255, mean {sum / n:F2}/255, {100 * within1 / n:F1}% within 1, " +
               $"{100 * within8 / n:F1}% within 8, PSNR {psnr}";
    }
}
