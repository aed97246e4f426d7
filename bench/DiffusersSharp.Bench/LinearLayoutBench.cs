using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// <c>bench -- linear-layout [--dtypes fp32,bf16] [--rows 77] [--runs 9]</c>: <c>F.linear</c> with the [out, in] weight
/// stored row-major (as built) against column-major (its transpose contiguous: what <c>LinearWeightLayout</c> keeps for
/// fp32 text encoders), interleaved, on the CLIP text encoders' shapes (L/14: 768 wide, H/14: 1024) for batches of 1 and 2
/// prompts (<c>--rows</c> tokens each; 4096 gives UNet-sized products on the same widths). Each timed call runs over 24
/// distinct weights (2 past 1000 rows), so the weights come from memory as in a model's pass, not from cache. Also the
/// load's copy of a stored row-major weight into a column-major one: strided against transposing.
/// </summary>
public static class LinearLayoutBench
{
    private static readonly (long Batch, long In, long Out)[] Shapes =
    {
        (1, 768, 768), (1, 768, 3072), (1, 3072, 768),
        (1, 1024, 1024), (1, 1024, 4096), (1, 4096, 1024),
        (2, 1024, 1024), (2, 1024, 4096), (2, 4096, 1024),
    };

    public static int Run(ScalarType[] dtypes, long rows, int runs)
    {
        using var mode = torch.inference_mode();
        Console.WriteLine($"linear weight layout, {torch.get_num_threads()} thread(s), {rows} rows a prompt, medians of {runs}");
        int count = rows > 1000 ? 2 : 24;
        foreach (var dtype in dtypes)
        {
            double sumRow = 0, sumCol = 0;
            foreach (var (batch, k, n) in Shapes)
            {
                torch.manual_seed(0);
                using var scope = torch.NewDisposeScope();
                var x = torch.randn(batch, rows, k).to(dtype);
                var b = (torch.randn(n) / Math.Sqrt(k)).to(dtype);
                var rowMajor = Enumerable.Range(0, count).Select(_ => (torch.randn(n, k) / Math.Sqrt(k)).to(dtype)).ToArray();
                var colMajor = rowMajor.Select(w => w.t().contiguous().t()).ToArray();
                double maxDiff;
                using (torch.NewDisposeScope())
                    maxDiff = (nn.functional.linear(x, rowMajor[0], b) - nn.functional.linear(x, colMajor[0], b)).abs().max().to(ScalarType.Float64).item<double>();
                var tr = new List<double>();
                var tc = new List<double>();
                for (int i = 0; i < runs + 2; i++)
                {
                    var sw = Stopwatch.StartNew();
                    foreach (var w in rowMajor) using (torch.NewDisposeScope()) nn.functional.linear(x, w, b);
                    double a = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    foreach (var w in colMajor) using (torch.NewDisposeScope()) nn.functional.linear(x, w, b);
                    double c = sw.Elapsed.TotalMilliseconds;
                    if (i >= 2) { tr.Add(a / count); tc.Add(c / count); }
                }
                double mr = Harness.Median(tr), mc = Harness.Median(tc);
                sumRow += mr;
                sumCol += mc;
                Console.WriteLine($"  {dtype,-8} {batch}x{rows} {k,5} -> {n,5}: row-major {mr,8:F3} ms  column-major {mc,8:F3} ms  ratio {mc / mr:F2}  max|Δ| {maxDiff:E1}");
            }
            Console.WriteLine($"  {dtype,-8} sum of medians: row-major {sumRow:F2} ms, column-major {sumCol:F2} ms, ratio {sumCol / sumRow:F3}");
        }
        using (var whole = torch.randn(4096, 1024))
        using (var target = torch.empty(1024, 4096).t())
        {
            var strided = new List<double>();
            var transposing = new List<double>();
            for (int i = 0; i < runs + 2; i++)
            {
                var sw = Stopwatch.StartNew();
                target.copy_(whole);
                double a = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                using (var dst = target.t())
                using (var src = whole.t())
                    dst.copy_(src);
                double c = sw.Elapsed.TotalMilliseconds;
                if (i >= 2) { strided.Add(a); transposing.Add(c); }
            }
            Console.WriteLine($"  load copy of a 4096 x 1024 fp32 weight into column-major: strided {Harness.Median(strided):F2} ms, transposing {Harness.Median(transposing):F2} ms");
        }
        return 0;
    }
}
