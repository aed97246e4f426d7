using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

/// <summary><see cref="UserPath.ExpandUser"/>: Python's <c>os.path.expanduser</c>.</summary>
public sealed class UserPathTests
{
    [Theory]
    [InlineData("~", "/home/u", "/home/u")]
    [InlineData("~/x/y", "/home/u", "/home/u/x/y")]
    [InlineData("~/x", "/home/u/", "/home/u/x")]           // posixpath: the home's trailing '/' dropped
    [InlineData("~//x", "/home/u", "/home/u//x")]          // the rest as it is (Path.Combine would make it '/x')
    [InlineData("~", "/", "/")]
    [InlineData("~/x", "/", "/x")]
    [InlineData("~user/x", "/home/u", "~user/x")]          // another user's home: not looked up
    [InlineData("x/~/y", "/home/u", "x/~/y")]
    [InlineData("", "/home/u", "")]
    public void ExpandUserAsPosixpath(string path, string home, string expected)
    {
        if (OperatingSystem.IsWindows()) return; // ntpath separators differ
        Assert.Equal(expected, UserPath.ExpandUser(path, home));
    }

    [Fact]
    public void AnEmptyHomeIsTheRootAsInPython()
    {
        // posixpath.expanduser takes os.environ['HOME'] whenever the key is there: with HOME='' the home is '', rstrip('/')
        // keeps it '', and '~/x' becomes '/x', '~' the root ("... or root"); only an unset HOME falls back to the password
        // database (our OS profile folder). huggingface_hub's default cache is then '/.cache/huggingface/hub'.
        if (OperatingSystem.IsWindows()) return; // ntpath reads USERPROFILE, which Windows never holds empty
        var env = new Dictionary<string, string?> { ["HOME"] = "" };
        Assert.Equal("", UserPath.Home(env.GetValueOrDefault));
        Assert.Equal("/x", UserPath.ExpandUser("~/x", UserPath.Home(env.GetValueOrDefault)));
        Assert.Equal("/", UserPath.ExpandUser("~", UserPath.Home(env.GetValueOrDefault)));
        Assert.Equal("/", UserPath.ExpandUser("~/", ""));
        Assert.Equal("/.cache/huggingface/hub", HubSettings.DefaultCacheDir(env.GetValueOrDefault));
        Assert.Equal("/.cache/huggingface/hub", HubSettings.FromEnvironment(environment: env).CacheDir);
        Assert.Equal("/h/hub", HubSettings.FromEnvironment(environment: new Dictionary<string, string?>(env) { ["HF_HOME"] = "~/h" }).CacheDir);
        // unset: the OS profile folder
        Assert.Equal(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), UserPath.Home(_ => null));
    }
}
