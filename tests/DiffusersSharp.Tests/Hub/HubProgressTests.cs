using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

public sealed class HubProgressTests
{
    [Fact]
    public void ProgressLineShowsBytesRateAndEta()
    {
        var p = new HubDownloadProgress("org/x", "unet/w.safetensors", 12_345_678, 45_600_000, 3_200_000, TimeSpan.FromSeconds(10.4), false);
        Assert.Equal("unet/w.safetensors  12.3MB/45.6MB  3.2MB/s  ETA 00:00:10", p.ToString());
        var done = p with { BytesDownloaded = 45_600_000, Completed = true, Eta = TimeSpan.Zero };
        Assert.Equal("unet/w.safetensors  45.6MB/45.6MB  3.2MB/s  done", done.ToString());
        Assert.Equal("config.json  999.0B  0.0B/s  ETA ?", new HubDownloadProgress("org/x", "config.json", 999, null, 0, null, false).ToString());

        var plain = new StringWriter();
        var printer = new HubProgressPrinter(plain, interactive: false);
        printer.Report(p);
        printer.Report(done);
        Assert.Equal(done + Environment.NewLine, plain.ToString());

        var tty = new StringWriter();
        var bar = new HubProgressPrinter(tty, interactive: true);
        bar.Report(p);
        bar.Report(done);
        Assert.Equal("\r" + p + "\r" + done.ToString().PadRight(p.ToString().Length) + Environment.NewLine, tty.ToString());
    }
}
