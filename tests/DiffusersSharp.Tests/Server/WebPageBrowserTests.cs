using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace DiffusersSharp.Tests.Server;

/// <summary>
/// The page at / in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): type a prompt, press
/// Generate, see the progress bar move and the image appear. Set DIFFUSERS_SERVE_SCREENSHOT to a path to keep a screenshot.
/// </summary>
[Collection("server")]
public class WebPageBrowserTests(ServerFixture fixture)
{
    private static string Chromium => File.Exists("/usr/lib/chromium/chromium") ? "/usr/lib/chromium/chromium" : "/usr/bin/chromium";

    [Fact]
    public void TypingAPromptAndPressingGenerateShowsProgressAndTheImage()
    {
        using var driver = OpenPage();
        var wait = new WebDriverWait(driver, TimeSpan.FromSeconds(180)) { PollingInterval = TimeSpan.FromMilliseconds(5) };
        wait.Until(d => d.FindElements(By.CssSelector("#model option")).Count > 0);

        driver.FindElement(By.Id("prompt")).SendKeys("a lighthouse at dusk");
        foreach (var (id, value) in new[] { ("width", "96"), ("height", "96"), ("steps", "12") })
        {
            var input = driver.FindElement(By.Id(id));
            input.Clear();
            input.SendKeys(value);
        }
        // Every value the bar takes, recorded by the page itself (polling alone can miss a short run on a busy machine).
        ((IJavaScriptExecutor)driver).ExecuteScript(
            "window.__progress = []; const p = document.getElementById('progress');" +
            "new MutationObserver(() => window.__progress.push(Number(p.value))).observe(p, { attributes: true });");
        driver.FindElement(By.Id("generate")).Click();

        // the bar moves: seen strictly between 0 and 100 at least once, and rising
        var seen = new List<int>();
        wait.Until(d =>
        {
            int v = int.Parse(d.FindElement(By.Id("progress")).GetDomProperty("value") ?? "0");
            if (seen.Count == 0 || seen[^1] != v) seen.Add(v);
            return d.FindElements(By.CssSelector("#result img")).Count > 0;
        });
        var recorded = ((IReadOnlyCollection<object>)((IJavaScriptExecutor)driver).ExecuteScript("return window.__progress;")!)
            .Select(Convert.ToDouble).ToList();
        Assert.Contains(seen.Select(v => (double)v).Concat(recorded), v => v is > 0 and < 100);
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(recorded.Order(), recorded);
        var img = driver.FindElement(By.CssSelector("#result img"));
        wait.Until(_ => ((IJavaScriptExecutor)driver).ExecuteScript("return arguments[0].complete && arguments[0].naturalWidth === 96;", img) is true);
        Assert.StartsWith("done in", driver.FindElement(By.Id("progress_text")).Text);
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).Count > 0);

        if (Environment.GetEnvironmentVariable("DIFFUSERS_SERVE_SCREENSHOT") is { Length: > 0 } path)
            driver.GetScreenshot().SaveAsFile(path);
    }

    [Fact]
    public async Task TheFreeUFieldIsSentKeptInTheHistoryAndRefusedWhenMalformed()
    {
        using var driver = OpenPage();
        var wait = new WebDriverWait(driver, TimeSpan.FromSeconds(180)) { PollingInterval = TimeSpan.FromMilliseconds(20) };
        wait.Until(d => d.FindElements(By.CssSelector("#model option")).Count > 0);
        driver.FindElement(By.Id("prompt")).SendKeys("a freeu lighthouse");
        foreach (var (id, value) in new[] { ("width", "32"), ("height", "32"), ("steps", "2"), ("freeu", "0.9, 0.2,1.2,1.4") })
        {
            var input = driver.FindElement(By.Id(id));
            input.Clear();
            input.SendKeys(value);
        }
        driver.FindElement(By.Id("generate")).Click();
        wait.Until(d => d.FindElements(By.CssSelector("#result img")).Count > 0);
        var history = System.Text.Json.Nodes.JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Equal("a freeu lighthouse", (string?)history["prompt"]);
        Assert.Equal([0.9, 0.2, 1.2, 1.4], history["freeu"]!.AsArray().Select(n => (double)n!));

        // "use these settings again" puts the factors back
        var freeu = driver.FindElement(By.Id("freeu"));
        freeu.Clear();
        wait.Until(d => d.FindElements(By.CssSelector("#gallery .item")).FirstOrDefault()?.Text.StartsWith("a freeu lighthouse") == true);
        driver.FindElement(By.CssSelector("#gallery .item button")).Click();
        Assert.Equal("0.9,0.2,1.2,1.4", freeu.GetDomProperty("value"));

        freeu.Clear();
        freeu.SendKeys("0.9,0.2,high");
        driver.FindElement(By.Id("generate")).Click();
        wait.Until(d => d.FindElement(By.Id("error")).Text.Length > 0);
        Assert.Equal("freeu: must be a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])", driver.FindElement(By.Id("error")).Text);
    }

    /// <summary>Headless Chromium on the fixture's page.</summary>
    private ChromeDriver OpenPage()
    {
        Assert.True(File.Exists("/usr/bin/chromedriver"), "install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)");
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var options = new ChromeOptions { BinaryLocation = Chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,900");
        var driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
        driver.Navigate().GoToUrl(fixture.Server.Address);
        return driver;
    }
}
