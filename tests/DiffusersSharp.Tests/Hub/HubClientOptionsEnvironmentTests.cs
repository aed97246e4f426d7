using DiffusersSharp.Hub;
using DiffusersSharp.Tests.Cli;

namespace DiffusersSharp.Tests.Hub;

/// <summary>
/// Which environment <see cref="HubClientOptions"/> reads its timeouts from: the process's for <c>new()</c>, only the
/// given one for <see cref="HubClientOptions.FromEnvironment"/> (run alone: they set process variables).
/// </summary>
[Collection(EnvironmentCollection.Name)]
public sealed class HubClientOptionsEnvironmentTests
{
    [Fact]
    public void FromEnvironmentIgnoresTheProcessEnvironment()
    {
        using var env = new EnvironmentScope(new Dictionary<string, string?> { ["HF_HUB_DOWNLOAD_TIMEOUT"] = "ten", ["HF_HUB_ETAG_TIMEOUT"] = "7" });
        var o = HubClientOptions.FromEnvironment(new Dictionary<string, string?> { ["HF_HUB_DOWNLOAD_TIMEOUT"] = "30" });
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)), (o.RequestTimeout, o.EtagTimeout));

        var e = Assert.Throws<HubException>(() => new HubClientOptions());
        Assert.Equal("HF_HUB_DOWNLOAD_TIMEOUT must be a whole number of seconds, got 'ten'.", e.Message);
        env.Set("HF_HUB_DOWNLOAD_TIMEOUT", "12");
        var p = new HubClientOptions();
        Assert.Equal((TimeSpan.FromSeconds(12), TimeSpan.FromSeconds(7)), (p.RequestTimeout, p.EtagTimeout));
        Assert.Equal((TimeSpan.FromSeconds(12), TimeSpan.FromSeconds(7)), ((p with { MaxRetries = 1 }).RequestTimeout, (p with { MaxRetries = 1 }).EtagTimeout));
    }
}
