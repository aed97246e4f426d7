using System.Globalization;
using SkiaSharp;

namespace DiffusersSharp.Training;

/// <summary>A loss-curve PNG drawn with SkiaSharp: the per-step loss (light), its moving average (dark), log-scaled y.</summary>
public static class LossCurvePlot
{
    /// <summary>Writes a PNG plot of the loss against the step to <paramref name="path"/>.</summary>
    public static void Save(string path, IReadOnlyList<(long Step, double Loss)> points, int width = 800, int height = 480)
    {
        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var c = surface.Canvas;
        c.Clear(SKColors.White);
        const float left = 70, right = 20, top = 30, bottom = 50;
        float pw = width - left - right, ph = height - top - bottom;
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 13, IsAntialias = true };
        c.DrawRect(left, top, pw, ph, axis);
        c.DrawText("training loss (MSE, log scale) vs step", left, top - 10, text);
        var pts = points.Where(p => p.Loss > 0 && double.IsFinite(p.Loss)).ToList();
        if (pts.Count >= 1)
        {
            double x0 = pts[0].Step, x1 = Math.Max(pts[^1].Step, x0 + 1);
            double ly0 = Math.Log10(pts.Min(p => p.Loss)), ly1 = Math.Log10(pts.Max(p => p.Loss));
            if (ly1 - ly0 < 1e-6) { ly0 -= 0.5; ly1 += 0.5; }
            float X(double s) => (float)(left + (s - x0) / (x1 - x0) * pw);
            float Y(double l) => (float)(top + (ly1 - Math.Log10(l)) / (ly1 - ly0) * ph);
            using var raw = new SKPaint { Color = new SKColor(120, 160, 230), StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var avg = new SKPaint { Color = new SKColor(200, 40, 40), StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var rawPath = new SKPath();
            using var avgPath = new SKPath();
            int window = Math.Max(1, pts.Count / 50);
            double sum = 0;
            for (int i = 0; i < pts.Count; i++)
            {
                if (i == 0) rawPath.MoveTo(X(pts[i].Step), Y(pts[i].Loss)); else rawPath.LineTo(X(pts[i].Step), Y(pts[i].Loss));
                sum += pts[i].Loss;
                if (i >= window) sum -= pts[i - window].Loss;
                double m = sum / Math.Min(i + 1, window);
                if (i == 0) avgPath.MoveTo(X(pts[i].Step), Y(m)); else avgPath.LineTo(X(pts[i].Step), Y(m));
            }
            c.DrawPath(rawPath, raw);
            c.DrawPath(avgPath, avg);
            for (int k = 0; k <= 4; k++)
            {
                double l = Math.Pow(10, ly0 + (ly1 - ly0) * k / 4);
                c.DrawText(l.ToString("0.####", CultureInfo.InvariantCulture), 5, Y(l) + 4, text);
                double s = x0 + (x1 - x0) * k / 4;
                c.DrawText(((long)s).ToString(CultureInfo.InvariantCulture), X(s) - 10, height - bottom + 18, text);
            }
            c.DrawText("step", left + pw / 2, height - 12, text);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(path, data.ToArray());
    }
}
